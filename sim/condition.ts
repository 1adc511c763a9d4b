// The `where` of a forwarding rule: a small condition language on a JSON payload, parsed here (never eval'd).
//
//   condition  := or
//   or         := and (("or" | "||") and)*
//   and        := not (("and" | "&&") not)*
//   not        := ("not" | "!") not | comparison
//   comparison := operand (("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") operand)?
//   operand    := number | 'text' | "text" | true | false | null | path | "(" condition ")"
//   path       := name ("." name)*          a field of the payload, e.g. params.temp
//
// A comparison of a number with a number is numeric, of text with text is by text; any other pair is only ever
// unequal. A missing field is undefined, equal to nothing. An operand alone is true when it is truthy.

export type Payload = unknown;
export type Condition = (payload: Payload) => boolean;

type Token =
  { kind: 'number'; value: number } | { kind: 'text'; value: string } | { kind: 'word'; value: string } | { kind: 'op'; value: string };

type Evaluate = (payload: Payload) => unknown;

const OPERATORS = ['==', '!=', '<>', '<=', '>=', '&&', '||', '=', '<', '>', '!', '(', ')'];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const char = source[i];
    if (/\s/.test(char)) {
      i++;
    } else if (char === '"' || char === "'") {
      const end = source.indexOf(char, i + 1);
      if (end < 0) throw new Error(`unterminated text starting at ${i + 1}`);
      tokens.push({ kind: 'text', value: source.slice(i + 1, end) });
      i = end + 1;
    } else if (/[0-9]/.test(char) || (char === '-' && /[0-9]/.test(source[i + 1] ?? ''))) {
      const match = /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(source.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'number', value: Number(match[0]) });
      i += match[0].length;
    } else if (/[A-Za-z_$]/.test(char)) {
      const match = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*/.exec(source.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'word', value: match[0] });
      i += match[0].length;
    } else {
      const op = OPERATORS.find((candidate) => source.startsWith(candidate, i));
      if (!op) throw new Error(`unexpected '${char}' at ${i + 1}`);
      tokens.push({ kind: 'op', value: op });
      i += op.length;
    }
  }
  return tokens;
}

/** Reads a dotted path of a JSON value; undefined where it does not exist. */
export function field(path: string): (payload: Payload) => unknown {
  const names = path.split('.');
  return (payload) => {
    let value: unknown = payload;
    for (const name of names) {
      if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, name)) return undefined;
      value = (value as Record<string, unknown>)[name];
    }
    return value;
  };
}

function compare(op: string, left: unknown, right: unknown): boolean {
  const comparable = (typeof left === 'number' && typeof right === 'number') || (typeof left === 'string' && typeof right === 'string');
  switch (op) {
    case '=':
    case '==':
      return left !== undefined && left === right;
    case '!=':
    case '<>':
      return left !== right;
    case '<':
      return comparable && (left as number) < (right as number);
    case '<=':
      return comparable && (left as number) <= (right as number);
    case '>':
      return comparable && (left as number) > (right as number);
    default:
      return comparable && (left as number) >= (right as number);
  }
}

class Parser {
  private position = 0;

  constructor(private readonly tokens: Token[]) {}

  parse(): Evaluate {
    const expression = this.or();
    if (this.position < this.tokens.length) throw new Error(`unexpected '${String(this.tokens[this.position].value)}'`);
    return expression;
  }

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }

  private accept(...values: string[]): string | undefined {
    const token = this.peek();
    if (token && (token.kind === 'op' || token.kind === 'word') && values.includes(token.value.toLowerCase())) {
      this.position++;
      return token.value.toLowerCase();
    }
    return undefined;
  }

  private or(): Evaluate {
    let left = this.and();
    while (this.accept('or', '||')) {
      const [a, b] = [left, this.and()];
      left = (payload) => Boolean(a(payload)) || Boolean(b(payload));
    }
    return left;
  }

  private and(): Evaluate {
    let left = this.not();
    while (this.accept('and', '&&')) {
      const [a, b] = [left, this.not()];
      left = (payload) => Boolean(a(payload)) && Boolean(b(payload));
    }
    return left;
  }

  private not(): Evaluate {
    if (this.accept('not', '!')) {
      const inner = this.not();
      return (payload) => !inner(payload);
    }
    return this.comparison();
  }

  private comparison(): Evaluate {
    const left = this.operand();
    const op = this.accept('==', '!=', '<>', '<=', '>=', '=', '<', '>');
    if (!op) return left;
    const right = this.operand();
    return (payload) => compare(op, left(payload), right(payload));
  }

  private operand(): Evaluate {
    const token = this.peek();
    if (!token) throw new Error('the condition ends too early');
    this.position++;
    if (token.kind === 'number' || token.kind === 'text') return () => token.value;
    if (token.kind === 'op' && token.value === '(') {
      const inner = this.or();
      if (!this.accept(')')) throw new Error("missing ')'");
      return inner;
    }
    if (token.kind === 'word') {
      const word = token.value.toLowerCase();
      if (word === 'true') return () => true;
      if (word === 'false') return () => false;
      if (word === 'null') return () => null;
      if (['and', 'or', 'not'].includes(word)) throw new Error(`'${token.value}' where a value was expected`);
      return field(token.value);
    }
    throw new Error(`'${token.value}' where a value was expected`);
  }
}

/** Parses a condition; throws an Error saying what is wrong with it. */
export function compileCondition(source: string): Condition {
  const evaluate = new Parser(tokenize(source)).parse();
  return (payload) => Boolean(evaluate(payload));
}
