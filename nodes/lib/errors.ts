import * as fs from 'node:fs';
import * as path from 'node:path';

/** Values interpolated into a message template (`__name__` in the catalog, as Node-RED's i18next does). */
export type ErrorParams = Record<string, string | number>;

/** A line for the log: `code` names an entry under `log` in the connection node's catalog. */
export class LogMessage {
  constructor(readonly code: string, readonly params: ErrorParams = {}) {}

  get text(): string {
    return formatMessage(englishCatalog().log[this.code] ?? this.code, this.params);
  }
}

/**
 * An error a flow can act on. `code` names the entry under `errors` in the connection node's message catalog
 * (nodes/locales/<lang>/aliyun-iot-connection.json); `params` fill its placeholders. The English text built
 * here is the same catalog entry, so library users outside Node-RED get readable messages too.
 * Params never carry secrets.
 */
export class AliyunIotError extends Error {
  readonly code: string;
  readonly params: ErrorParams;

  constructor(code: string, params: ErrorParams = {}) {
    super(formatMessage(englishCatalog().errors[code] ?? code, withFieldLabel(params, (field) => englishCatalog().label[field])));
    this.name = 'AliyunIotError';
    this.code = code;
    this.params = params;
  }
}

export function formatMessage(template: string, params: ErrorParams): string {
  return template.replace(/__([A-Za-z0-9_]+)__/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole);
}

/**
 * The param `field` holds a connection property (`instanceId`, `uid`); messages show it by the label the editor shows
 * (the catalog's `label` section: "Instance ID", "Account ID").
 */
export function withFieldLabel(params: ErrorParams, labelOf: (field: string) => string | undefined): ErrorParams {
  if (typeof params.field !== 'string') return params;
  return { ...params, field: labelOf(params.field) ?? params.field };
}

interface EnglishCatalog {
  errors: Record<string, string>;
  log: Record<string, string>;
  label: Record<string, string>;
}

let english: EnglishCatalog | undefined;

function englishCatalog(): EnglishCatalog {
  if (!english) {
    const file = path.join(__dirname, '..', 'locales', 'en-US', 'aliyun-iot-connection.json');
    english = (JSON.parse(fs.readFileSync(file, 'utf8')) as { 'aliyun-iot-connection': EnglishCatalog })['aliyun-iot-connection'];
  }
  return english;
}
