// The message catalogs and help texts of every node type the package registers, as Node-RED loads them from beside
// the compiled nodes: each language has the keys, interpolation markers and placeholders of en-US, status texts stay
// short, and the help follows the layout of Node-RED's own help in every language.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../support/paths';

const ROOT = REPO_ROOT;
const REFERENCE = 'en-US';

type Section = 'inputs' | 'outputs' | 'details' | 'references';

/** The `<h3>` headings of the help, as Node-RED's own help names them in each language. */
const HEADINGS: Record<string, Record<Section, string>> = {
  'en-US': { inputs: 'Inputs', outputs: 'Outputs', details: 'Details', references: 'References' },
  'zh-CN': { inputs: '输入', outputs: '输出', details: '详细', references: '参考' },
};
const LANGUAGES = Object.keys(HEADINGS);

/** Status texts sit under a node in the flow: they must stay short in every language. */
const MAX_STATUS_LENGTH = 20;

interface NodeType {
  type: string;
  /** The folder of the compiled node: its editor .html and its locales/ are beside it. */
  dir: string;
}

function nodeTypes(): NodeType[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    'node-red': { nodes: Record<string, string> };
  };
  return Object.entries(manifest['node-red'].nodes).map(([type, file]) => ({ type, dir: path.dirname(path.join(ROOT, file)) }));
}

function localeFile(node: NodeType, language: string, extension: 'json' | 'html'): string {
  return path.join(node.dir, 'locales', language, `${node.type}.${extension}`);
}

function isConfigNode(node: NodeType): boolean {
  return /category:\s*['"]config['"]/.test(fs.readFileSync(path.join(node.dir, `${node.type}.html`), 'utf8'));
}

/** `__name__` markers (i18next interpolation, as lib/errors.ts fills them) and `${name}` topic placeholders. */
function markers(text: string): string[] {
  return [...text.matchAll(/__[A-Za-z0-9_]+__|\$\{[^}]*\}/g)].map((match) => match[0]).sort();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Every difference in shape, keys or markers between a translation and the reference catalog, by key path. */
function catalogProblems(reference: unknown, translation: unknown, key = ''): string[] {
  const at = (child: string): string => (key ? `${key}.${child}` : child);
  if (isObject(reference)) {
    if (!isObject(translation)) return [`${key}: should be an object`];
    const problems: string[] = [];
    for (const child of Object.keys(translation)) {
      if (!(child in reference)) problems.push(`${at(child)}: not in ${REFERENCE}`);
    }
    for (const [child, value] of Object.entries(reference)) {
      if (!(child in translation)) problems.push(`${at(child)}: missing`);
      else problems.push(...catalogProblems(value, translation[child], at(child)));
    }
    return problems;
  }
  if (typeof reference !== 'string') return [`${key}: ${REFERENCE} holds a ${typeof reference}, not text`];
  if (typeof translation !== 'string' || translation.trim() === '') return [`${key}: should be text`];
  const expected = markers(reference).join(' ');
  const actual = markers(translation).join(' ');
  return expected === actual ? [] : [`${key}: markers "${actual}" instead of "${expected}"`];
}

function readCatalog(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

interface Help {
  /** What the help script holds. */
  body: string;
  /** The `<h3>` sections in order, each with the message properties its `<dt>`s name. */
  sections: Array<{ section: Section | undefined; heading: string; properties: string[] }>;
}

function readHelp(node: NodeType, language: string): Help | string {
  const file = localeFile(node, language, 'html');
  if (!fs.existsSync(file)) return `${language}/${node.type}.html: missing`;
  const text = fs.readFileSync(file, 'utf8');
  const scripts = [...text.matchAll(/<script type="text\/html" data-help-name="([^"]*)">([\s\S]*?)<\/script>/g)];
  if (scripts.length !== 1 || scripts[0][1] !== node.type) {
    return `${language}/${node.type}.html: needs exactly one <script type="text/html" data-help-name="${node.type}">`;
  }
  const body = scripts[0][2];
  const names = HEADINGS[language];
  const parts = body.split(/<h3>/).slice(1);
  const sections = parts.map((part) => {
    const heading = part.slice(0, part.indexOf('</h3>')).trim();
    const section = (Object.keys(names) as Section[]).find((key) => names[key] === heading);
    const properties = [...part.matchAll(/<dt[^>]*>\s*([^<\s]+)/g)].map((match) => match[1]);
    return { section, heading, properties };
  });
  return { body, sections };
}

function helpProblems(node: NodeType, language: string, help: Help): string[] {
  const where = `${language}/${node.type}.html`;
  const problems: string[] = [];
  if (!/^\s*<p>[\s\S]*?<\/p>/.test(help.body)) problems.push(`${where}: should open with a one-sentence <p> summary (the palette tooltip)`);
  for (const { section, heading } of help.sections) {
    if (!section) problems.push(`${where}: unknown heading <h3>${heading}</h3>`);
  }
  const present = new Set(help.sections.map(({ section }) => section));
  const names = HEADINGS[language];
  for (const section of ['details', 'references'] as const) {
    if (!present.has(section)) problems.push(`${where}: no <h3>${names[section]}</h3>`);
  }
  const messages = present.has('inputs') || present.has('outputs');
  const config = isConfigNode(node);
  if (config && messages) problems.push(`${where}: a config node takes and sends no messages`);
  if (!config && !messages) problems.push(`${where}: no <h3>${names.inputs}</h3> or <h3>${names.outputs}</h3>`);
  return problems;
}

/** The translation documents the same sections, in the same order, with the same message properties. */
function helpDifferences(node: NodeType, language: string, reference: Help, translation: Help): string[] {
  const outline = (help: Help): string[] =>
    help.sections.map(({ section, properties }) =>
      section === 'inputs' || section === 'outputs' ? `${section}(${properties.join(', ')})` : (section ?? '?'),
    );
  const expected = outline(reference).join(' ');
  const actual = outline(translation).join(' ');
  return expected === actual ? [] : [`${language}/${node.type}.html: sections ${actual} instead of ${expected} as in ${REFERENCE}`];
}

describe('i18n: catalogs and help of every node type', function () {
  const types = nodeTypes();

  it('finds the node types in package.json', function () {
    assert.ok(types.length > 0);
  });

  it('has a catalog per language with the keys, markers and placeholders of en-US', function () {
    const problems: string[] = [];
    for (const node of types) {
      const referenceFile = localeFile(node, REFERENCE, 'json');
      if (!fs.existsSync(referenceFile)) {
        problems.push(`${REFERENCE}/${node.type}.json: missing`);
        continue;
      }
      const reference = readCatalog(referenceFile);
      if (!isObject(reference[node.type])) problems.push(`${REFERENCE}/${node.type}.json: no "${node.type}" namespace`);
      for (const language of LANGUAGES.filter((name) => name !== REFERENCE)) {
        const file = localeFile(node, language, 'json');
        if (!fs.existsSync(file)) problems.push(`${language}/${node.type}.json: missing`);
        else problems.push(...catalogProblems(reference, readCatalog(file)).map((problem) => `${language}/${node.type}.json ${problem}`));
      }
    }
    assert.deepEqual(problems, []);
  });

  it(`keeps every status text under ${MAX_STATUS_LENGTH} characters`, function () {
    const problems: string[] = [];
    for (const node of types) {
      for (const language of LANGUAGES) {
        const file = localeFile(node, language, 'json');
        if (!fs.existsSync(file)) continue;
        const status = (readCatalog(file)[node.type] as Record<string, unknown> | undefined)?.status;
        for (const [key, text] of Object.entries(isObject(status) ? status : {})) {
          if (typeof text === 'string' && Array.from(text).length >= MAX_STATUS_LENGTH) {
            problems.push(`${language}/${node.type}.json status.${key}: "${text}"`);
          }
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it("has help per language in the layout of Node-RED's own help", function () {
    const problems: string[] = [];
    for (const node of types) {
      const helps = new Map<string, Help>();
      for (const language of LANGUAGES) {
        const help = readHelp(node, language);
        if (typeof help === 'string') problems.push(help);
        else {
          helps.set(language, help);
          problems.push(...helpProblems(node, language, help));
        }
      }
      const reference = helps.get(REFERENCE);
      for (const [language, help] of helps) {
        if (reference && language !== REFERENCE) problems.push(...helpDifferences(node, language, reference, help));
      }
    }
    assert.deepEqual(problems, []);
  });
});
