import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { MessageMeta, MessageReceiver, SharedConnection, SubDeviceSubscriptions, subDeviceOfTopic } from './lib/connection';
import { AliyunIotError, shownValue } from './lib/errors';
import { Datatype, decodePayload, isDatatype } from './lib/protocol';
import { failure } from './support/failure';
import { onInput } from './support/input';
import { errorStatus, nodeStatus } from './support/status';
import { startUserNode } from './support/user-node';

interface InNodeDef extends NodeDef {
  connection: string;
  topic: string;
  qos: string | number;
  datatype: Datatype;
  dynamic: boolean | string;
}

type SubscriptionRequest = string | { topic?: unknown; qos?: unknown };

interface ActionMessage extends NodeMessageInFlow {
  action?: unknown;
  code?: unknown;
  subscriptions?: Array<{ topic: string; qos: number }>;
}

const ACTIONS = ['subscribe', 'unsubscribe', 'getSubscriptions', 'connect', 'disconnect'];

export = function (RED: NodeAPI): void {
  function AliyunIotInNode(this: Node, config: InNodeDef): void {
    const deniedFilters = new Set<string>();
    const started = startUserNode(RED, this, config, {
      service: 'any',
      notices: true,
      status: (status) => (status.state === 'connected' && deniedFilters.size > 0 ? errorStatus('subscribe-denied') : nodeStatus(status)),
    });
    if (!started) return;
    const { node, connection, onClose, subDevice, onSubDeviceStatus } = started;
    const datatype: Datatype = isDatatype(config.datatype) ? config.datatype : 'auto-detect';
    const dynamic = config.dynamic === true || config.dynamic === 'true';
    const defaultQos = config.qos === '' || config.qos === undefined ? 0 : Number(config.qos);

    const receiver: MessageReceiver = {
      onMessage(topic: string, payload: Buffer, meta: MessageMeta) {
        const { device } = meta;
        // One literal per shape, so that every msg of a shape shares its layout.
        const msg: Record<string, unknown> = device
          ? {
              topic,
              payload,
              qos: meta.qos,
              retain: meta.retain,
              productKey: device.productKey,
              deviceName: device.deviceName,
              messageId: device.messageId,
            }
          : { topic, payload, qos: meta.qos, retain: meta.retain };
        const subDeviceOfMsg = subDevice?.device ?? subDeviceOfTopic(connection, topic);
        if (subDeviceOfMsg) msg.device = { productKey: subDeviceOfMsg.productKey, deviceName: subDeviceOfMsg.deviceName };
        try {
          msg.payload = decodePayload(payload, datatype);
        } catch (err) {
          node.error(failure(RED, msg, err).message, msg as NodeMessage);
          return;
        }
        node.send(msg as NodeMessage);
      },
      onSubscribeError(filter: string, error: AliyunIotError) {
        deniedFilters.add(filter);
        node.status(errorStatus('subscribe-denied'));
        const msg: { topic: string; code?: unknown } = { topic: filter };
        node.error(failure(RED, msg, error).message, msg as NodeMessage);
      },
    };
    onClose((removed) => connection.unsubscribeAll(receiver, removed));
    // As a sub-device: its topics, subscribed while it is online through the gateway.
    const subDeviceFilters = subDevice ? new SubDeviceSubscriptions(subDevice, receiver) : undefined;
    if (subDeviceFilters) {
      onSubDeviceStatus((status) => subDeviceFilters.onStatus(status));
      onClose((removed) => subDeviceFilters.close(removed));
    }

    if (!dynamic) {
      try {
        if (subDeviceFilters) subDeviceFilters.add(config.topic, defaultQos);
        else connection.subscribe(receiver, config.topic, defaultQos);
      } catch (err) {
        node.status(errorStatus('config-error'));
        const msg: { topic: string; code?: unknown } = { topic: config.topic };
        node.error(failure(RED, msg, err).message, msg as NodeMessage);
      }
    }

    onInput(RED, node, (msg: ActionMessage, send, done) => {
      const action = msg.action;
      if (typeof action !== 'string' || !ACTIONS.includes(action)) {
        done(failure(RED, msg, new AliyunIotError('ACTION_UNKNOWN', { action: shownValue(action) })));
        return;
      }
      try {
        handleAction(connection, action, msg, send);
        done();
      } catch (err) {
        done(failure(RED, msg, err));
      }
    });

    function handleAction(conn: SharedConnection, action: string, msg: ActionMessage, send: (msg: NodeMessage) => void): void {
      switch (action) {
        case 'connect':
          conn.connect();
          return;
        case 'disconnect':
          conn.disconnect();
          return;
        case 'getSubscriptions':
          msg.topic = 'subscriptions';
          msg.payload = subDeviceFilters ? subDeviceFilters.list() : conn.subscriptionsOf(receiver);
          send(msg);
          return;
        case 'unsubscribe': {
          if (subDeviceFilters) {
            const templates =
              msg.topic === (true as unknown)
                ? subDeviceFilters.list().map((sub) => sub.topic)
                : requests(msg.topic).map((request) => request.topic);
            for (const topic of templates) subDeviceFilters.remove(topic);
            msg.subscriptions = subDeviceFilters.list();
            return;
          }
          const topics =
            msg.topic === (true as unknown)
              ? conn.subscriptionsOf(receiver).map((sub) => sub.topic)
              : requests(msg.topic).map((request) => request.topic);
          for (const topic of topics) {
            conn.unsubscribe(receiver, topic, true);
            deniedFilters.delete(conn.expandTopic(topic));
          }
          msg.subscriptions = conn.subscriptionsOf(receiver);
          return;
        }
        default: {
          const wanted = requests(msg.topic).map((request) => ({ topic: request.topic, qos: request.qos ?? defaultQos }));
          if (subDeviceFilters) {
            subDeviceFilters.addAll(wanted);
            msg.subscriptions = subDeviceFilters.list();
            return;
          }
          // Check all before subscribing any, so a bad entry leaves the subscriptions as they were.
          conn.checkSubscriptions(wanted);
          for (const request of wanted) conn.subscribe(receiver, request.topic, request.qos);
          msg.subscriptions = conn.subscriptionsOf(receiver);
        }
      }
    }
  }

  function requests(topic: unknown): Array<{ topic: string; qos?: unknown }> {
    const list: SubscriptionRequest[] = Array.isArray(topic) ? topic : [topic as SubscriptionRequest];
    return list.map((entry) => {
      const request = typeof entry === 'string' ? { topic: entry } : entry;
      if (!request || typeof request !== 'object' || typeof request.topic !== 'string' || request.topic === '') {
        throw new AliyunIotError('SUBSCRIPTION_INVALID');
      }
      return { topic: request.topic, qos: request.qos };
    });
  }

  RED.nodes.registerType('aliyun-iot-in', AliyunIotInNode);
};
