// qlobber ships no type declarations; this covers the part of its API the project uses.
declare module 'qlobber' {
  interface QlobberOptions {
    separator?: string;
    wildcard_one?: string;
    wildcard_some?: string;
    match_empty_levels?: boolean;
    cache_adds?: boolean | Map<string, unknown>;
    max_words?: number;
    max_wildcard_somes?: number;
  }
  class Qlobber<V> {
    constructor(options?: QlobberOptions);
    add(topic: string, value: V): this;
    remove(topic: string, value?: V): this;
    match(topic: string): V[];
    test(topic: string, value: V): boolean;
    clear(): this;
  }
  class QlobberDedup<V> {
    constructor(options?: QlobberOptions);
    add(topic: string, value: V): this;
    remove(topic: string, value?: V): this;
    match(topic: string): Set<V>;
    test(topic: string, value: V): boolean;
    clear(): this;
  }
}
