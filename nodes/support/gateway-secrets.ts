// Where a gateway node keeps the secrets `register` obtained: `<userDir>/aliyun-iot/subdevices/<connection id>.json`,
// encrypted with Node-RED's credentialSecret when the settings set one, else with a key file beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NodeAPI } from 'node-red';
import { AliyunIotError } from '../lib/errors';
import { HeldSecretStore, SecretStore, holdSecretStore } from '../lib/store';

export interface GatewaySecrets {
  /** The store, opened on first use; throws when there is no user directory or the store cannot be read. */
  get(): SecretStore;
  release(): void;
}

/** The store's file for a connection config node, or undefined when the runtime has no user directory. */
export function secretStoreFile(RED: NodeAPI, connectionId: string): string | undefined {
  const userDir = (RED.settings as { userDir?: unknown }).userDir;
  return typeof userDir === 'string' && userDir !== '' ? path.join(userDir, 'aliyun-iot', 'subdevices', `${connectionId}.json`) : undefined;
}

/**
 * The secrets of a gateway node's connection. A store that exists is opened at once, so that a problem with it
 * shows when the node starts (`problem`); a new one is made only when a secret is first needed.
 */
export function gatewaySecrets(RED: NodeAPI, connectionId: string): GatewaySecrets & { problem?: Error } {
  const file = secretStoreFile(RED, connectionId);
  const secret = (RED.settings as { credentialSecret?: unknown }).credentialSecret;
  const passphrase = typeof secret === 'string' && secret !== '' ? secret : undefined;
  let held: HeldSecretStore | undefined;
  const get = (): SecretStore => {
    if (!file) throw new AliyunIotError('SECRET_STORE_UNAVAILABLE');
    held ??= holdSecretStore({ file, passphrase });
    return held.store;
  };
  const secrets: GatewaySecrets & { problem?: Error } = {
    get,
    release: () => {
      held?.release().catch(() => undefined);
      held = undefined;
    },
  };
  if (file && fs.existsSync(file)) {
    try {
      get();
    } catch (err) {
      secrets.problem = err as Error;
    }
  }
  return secrets;
}
