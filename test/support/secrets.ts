// Distinctive secrets for the leak tests, and the check that a text holds none of them.
import { strict as assert } from 'node:assert';

/** Distinctive values: any of them, found anywhere the test looks, is a leak. */
export const SECRET = {
  deviceSecret: 'dsecZq7vK2pW9xLm4RtY',
  otherDeviceSecret: 'dsecB6nM1qW8eR3tY5uI',
  wrongDeviceSecret: 'wrongHn3bV8cX1zQa6PsE',
  accessKeySecret: 'aksecJt5yU0iO2pLk9MnB',
  wrongAccessKeySecret: 'wrongKd2fG7hJ4kL9zXcV',
  token: 'tokenRg4fD7sA1wQe8ZxC',
  wrongToken: 'wrongTq9wE2rT5yU8iOp',
  deviceAccessKeySecret: 'dcsecPl0oK9iJ8uH7yGt',
  cloudAccessKeySecret: 'cloudsecMn4bV7cX2zLk',
  /** Tokens a flow uploads on a live connection (msg.action 'uploadToken'), with a bad type, malformed, and good. */
  uploadedBadType: 'upltokAa1Ss2Dd3Ff4Gg5',
  uploadedMalformed: 'upltokHh6Jj7Kk8Ll9Zz0',
  uploadedToWrongMode: 'upltokQq1Ww2Ee3Rr4Tt5',
};
export const SECRET_VALUES = Object.values(SECRET);

/** Fails when `text` holds one of the secrets, or one of `extra` (passwords signed from them). */
export function assertNoLeak(what: string, text: string, extra: string[] = []): void {
  for (const secret of [...SECRET_VALUES, ...extra]) {
    assert.ok(!text.includes(secret), `${what} contains a secret or a password signed from one: ${secret}`);
  }
}
