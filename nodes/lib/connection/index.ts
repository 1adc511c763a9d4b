// Connections and what runs on them: a device's MQTT connection, a cloud application's AMQP link and OpenAPI, the
// shared parts (subscriptions, offline queue, status, reconnect decisions) and the thing-model posts.
export * from './api-call';
export * from './apsaramq-token';
export * from './cloud-application-connection';
export * from './device-connection';
export * from './device-invocation';
export * from './offline-queue';
export * from './openapi-client';
export * from './pending-requests';
export * from './post-client';
export * from './reconnect-policy';
export * from './settings';
export * from './status-broadcaster';
export * from './sub-device-manager';
export * from './subscription-table';
export * from './types';
export * from './gateway-actions';
