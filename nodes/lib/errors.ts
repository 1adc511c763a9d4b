import * as fs from 'node:fs';
import * as path from 'node:path';
import type connectionCatalog from '../locales/en-US/aliyun-iot-connection.json';

/** The shared texts of the connection node's en-US catalog: its keys are the only codes that compile. */
type ConnectionMessages = (typeof connectionCatalog)['aliyun-iot-connection'];

/** A key under `errors`: the code of an AliyunIotError. */
export type ErrorCode = keyof ConnectionMessages['errors'];
/** A key under `log`: the code of a LogMessage. */
export type LogCode = keyof ConnectionMessages['log'];
/** A key under `status`: the reason a node's status shows. */
export type StatusCode = keyof ConnectionMessages['status'];

/** Values interpolated into a message template (`__name__` in the catalog, as Node-RED's i18next does). */
export type ErrorParams = Record<string, string | number>;

/** A line for the log: `code` names an entry under `log` in the connection node's catalog. */
export class LogMessage {
  constructor(
    readonly code: LogCode,
    readonly params: ErrorParams = {},
  ) {}

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
  readonly code: ErrorCode;
  readonly params: ErrorParams;

  constructor(code: ErrorCode, params: ErrorParams = {}) {
    super(
      formatMessage(
        englishCatalog().errors[code] ?? code,
        withFieldLabel(params, (field) => englishCatalog().label[field]),
      ),
    );
    this.name = 'AliyunIotError';
    this.code = code;
    this.params = params;
  }
}

/** Whether `code` also names a log line (as a refused subscription does, an error that is logged too). */
export function isLogCode(code: string): code is LogCode {
  return Object.prototype.hasOwnProperty.call(englishCatalog().log, code);
}

/** A value as an error message shows it; String() of a Symbol works, of an object without a usable toString it throws. */
export function shownValue(value: unknown): string {
  try {
    return typeof value === 'symbol' ? value.toString() : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export function formatMessage(template: string, params: ErrorParams): string {
  return template.replace(/__([A-Za-z0-9_]+)__/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

/**
 * The param `field` holds a connection property (`instanceId`, `uid`); messages show it by the label the editor shows
 * (the catalog's `label` section: "Instance ID", "Account ID").
 */
export function withFieldLabel(params: ErrorParams, labelOf: (field: string) => string | undefined): ErrorParams {
  if (typeof params.field !== 'string') return params;
  return { ...params, field: labelOf(params.field) ?? params.field };
}

/** As read at run time: a code missing from the file (a stale build) falls back to the code itself. */
interface CatalogTexts {
  label: Partial<Record<string, string>>;
  errors: Partial<Record<ErrorCode, string>>;
  log: Partial<Record<LogCode, string>>;
}

const LOCALES = path.join(__dirname, '..', 'locales');
export const DEFAULT_LANGUAGE = 'en-US';
const catalogs = new Map<string, CatalogTexts>();

/** The languages the message catalogs are written in, e.g. `['en-US', 'zh-CN']`. */
export function catalogLanguages(): string[] {
  return fs
    .readdirSync(LOCALES, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
}

function catalogIn(language: string): CatalogTexts {
  let catalog = catalogs.get(language);
  if (!catalog) {
    const file = path.join(LOCALES, language, 'aliyun-iot-connection.json');
    catalog = (JSON.parse(fs.readFileSync(file, 'utf8')) as { 'aliyun-iot-connection': CatalogTexts })['aliyun-iot-connection'];
    catalogs.set(language, catalog);
  }
  return catalog;
}

function englishCatalog(): CatalogTexts {
  return catalogIn(DEFAULT_LANGUAGE);
}

/**
 * The error's text in one of `catalogLanguages()`, for a reader whose language is not the runtime's (the editor's
 * user); a text the catalog lacks is the English one.
 */
export function errorMessageIn(language: string, err: AliyunIotError): string {
  const template = catalogIn(language).errors[err.code];
  return template === undefined ? err.message : formatMessage(template, err.params);
}

/** A form field's label in one of `catalogLanguages()` (English when that catalog lacks it), e.g. `Port` for `port`. */
export function fieldLabelIn(language: string, field: string): string {
  return catalogIn(language).label[field] ?? englishCatalog().label[field] ?? field;
}
