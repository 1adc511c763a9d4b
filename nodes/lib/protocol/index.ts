// The pure protocol layer: identifiers, limits, endpoints, logins, signatures, topics, the thing model, payloads.
// No sockets and no timers here: everything can be tested without a network.
export * from './alink';
export * from './amqp-login';
export * from './editor-rules';
export * from './endpoints';
export * from './gateway';
export * from './hmac';
export * from './history';
export * from './identifiers';
export * from './iot-login';
export * from './limits';
export * from './mq-login';
export * from './openapi-signature';
export * from './openapi-signature-v3';
export * from './payload';
export * from './topics';
