// The editor's "Will send" preview of a connection: endpoint, client id and username as the user types, never a
// password (placeholders stand in for the secrets, which the editor does not send), in the editor's language.
import type { NodeAPI, NodeDef } from 'node-red';
import { ConnectionSettings, resolveCloud, resolveConnection } from '../lib/connection';
import { AliyunIotError, DEFAULT_LANGUAGE, catalogLanguages, errorMessageIn, fieldLabelIn } from '../lib/errors';
import { endpointUrl } from '../lib/protocol';
import { expandEnvironment } from './environment';
import { localizeError } from './i18n';

type PreviewForm = Partial<NodeDef & Omit<ConnectionSettings, 'credentials'>> & { accessKeyId?: unknown };

export interface Preview {
  endpoint?: string;
  apiEndpoint?: string;
  clientId?: string;
  username?: string;
  error?: string;
}

function preview(RED: NodeAPI, form: PreviewForm, language: string): Preview {
  const { accessKeyId, id, ...fields } = form;
  try {
    // The runtime expands `${NAME}` fields before the node sees them; the preview shows what the node will get.
    const expanded = expandEnvironment(RED, fields, id);
    const [unset] = expanded.unset;
    if (unset) throw new AliyunIotError('ENV_VARIABLE_UNSET', { field: fieldLabelIn(language, unset.field), name: unset.name });
    const credentials = {
      deviceSecret: '-',
      accessKeyId: typeof accessKeyId === 'string' && accessKeyId !== '' ? accessKeyId : 'AccessKeyId',
      accessKeySecret: '-',
      token: '-',
    };
    const settings = { ...(expanded.fields as Omit<ConnectionSettings, 'credentials'>), credentials };
    if (settings.mode === 'cloud') {
      const cloud = resolveCloud(settings);
      const { amqp } = cloud;
      return {
        endpoint: `${amqp.tls ? 'amqps' : 'amqp'}://${amqp.host}:${amqp.port}`,
        apiEndpoint: cloud.apiEndpoint,
        clientId: cloud.clientId,
        username: cloud.amqpLogin().username,
      };
    }
    const profile = resolveConnection(settings);
    const login = profile.sign();
    return { endpoint: endpointUrl(profile.endpoint), clientId: login.clientId, username: login.username };
  } catch (err) {
    return { error: err instanceof AliyunIotError ? errorMessageIn(language, err) : localizeError(RED, err).message };
  }
}

export function registerConnectionPreview(RED: NodeAPI): void {
  const languages = [DEFAULT_LANGUAGE, ...catalogLanguages().filter((language) => language !== DEFAULT_LANGUAGE)];
  RED.httpAdmin.post('/aliyun-iot/preview', RED.auth.needsPermission('aliyun-iot-connection.read'), (req, res) => {
    // The editor sends its language (RED.i18n.lang()) as Accept-Language.
    const language = req.acceptsLanguages(...languages) || DEFAULT_LANGUAGE;
    res.json(preview(RED, (req.body ?? {}) as PreviewForm, language));
  });
}
