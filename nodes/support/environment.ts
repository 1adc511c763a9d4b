// Environment variables in a config node's fields, expanded as the runtime expands them before it creates the node.
import type { NodeAPI } from 'node-red';

/**
 * The runtime's rule (@node-red/runtime, flows/util.js mapEnvVarProperties, not exported): a field whose whole text
 * is `${NAME}` (or the older `$(NAME)`) takes the variable's value; a variable that is not set leaves the text as it is.
 */
const ENVIRONMENT_REFERENCES = [/^\$\{(\S+)\}$/, /^\$\((\S+)\)$/];

/** The variable a field's text names in full, if it does. */
export function environmentReference(text: string): string | undefined {
  for (const pattern of ENVIRONMENT_REFERENCES) {
    const match = pattern.exec(text);
    if (match) return match[1];
  }
  return undefined;
}

export interface ExpandedFields<Fields> {
  fields: Fields;
  /** The fields whose variable is not set, with its name, in the order of the fields. */
  unset: Array<{ field: string; name: string }>;
}

/**
 * The fields as the runtime would give them to the node `nodeId`: its flow's and the global environment when it is
 * deployed, else the process environment (less the settings' `envVarExcludes`, as the runtime does).
 */
export function expandEnvironment<Fields extends Record<string, unknown>>(
  RED: NodeAPI,
  fields: Fields,
  nodeId?: string,
): ExpandedFields<Fields> {
  const deployed = nodeId ? RED.nodes.getNode(nodeId) : null;
  const excluded = (RED.settings as { envVarExcludes?: unknown }).envVarExcludes;
  const lookup = (name: string): string | undefined => {
    if (deployed) return RED.util.getSetting(deployed, name) ?? undefined;
    return Array.isArray(excluded) && excluded.includes(name) ? undefined : process.env[name];
  };
  const expanded: Record<string, unknown> = { ...fields };
  const unset: Array<{ field: string; name: string }> = [];
  for (const [field, value] of Object.entries(fields)) {
    const name = typeof value === 'string' ? environmentReference(value) : undefined;
    if (name === undefined) continue;
    const setting = lookup(name);
    if (setting === undefined) unset.push({ field, name });
    else expanded[field] = setting;
  }
  return { fields: expanded as Fields, unset };
}
