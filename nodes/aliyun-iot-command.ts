import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { Device, IDENTIFIER_PATTERNS, buildAnswer, readCommand, thingTopics } from './lib/protocol';
import {
  MessageReceiver,
  PublishCallback,
  SubDeviceSubscriptions,
  SubDeviceManager,
  publishAsSubDevice,
  subDeviceOfTopic,
  whenSubDeviceManager,
} from './lib/connection';
import { AliyunIotError } from './lib/errors';
import { localizeError } from './support/i18n';
import { errorStatus } from './support/status';
import { startUserNode } from './support/user-node';

interface CommandNodeDef extends NodeDef {
  connection: string;
  services: string;
  autoReplySet: boolean | string;
  rrpcTopic: string;
}

/** The filters a command node subscribes: property sets, services (all or the listed ones), RRPC. */
function commandFilters(device: Device, services: string[], rrpcTopic: string | undefined): string[] {
  const serviceIds = services.length > 0 ? services : ['+'];
  const filters = [
    thingTopics.propertySet(device),
    ...serviceIds.map((serviceId) => thingTopics.service(device, serviceId)),
    thingTopics.rrpcRequest(device, '+'),
    ...serviceIds.map((serviceId) => thingTopics.extRrpc(device, '+', serviceId)),
  ];
  if (rrpcTopic) filters.push(thingTopics.customRrpc('+', rrpcTopic));
  return filters;
}

export = function (RED: NodeAPI): void {
  function AliyunIotCommandNode(this: Node, config: CommandNodeDef): void {
    const started = startUserNode(RED, this, config, { service: 'iot' });
    if (!started) return;
    const { node, connection, onClose, subDevice, onSubDeviceStatus } = started;
    // The device whose commands these are: the node's sub-device, else the connection's own.
    const { productKey, deviceName } = subDevice ? subDevice.device : connection.profile.variables;
    const device = { productKey, deviceName };
    // On a gateway without a sub-device of its own, the node also takes every logged-in sub-device's commands: from
    // when the connection is known to be a gateway's, which may be after this node starts (a gateway node after it).
    let gateway: SubDeviceManager | undefined;
    const autoReplySet = config.autoReplySet === true || config.autoReplySet === 'true';
    const services = (config.services ?? '')
      .split(',')
      .map((service) => service.trim())
      .filter((service) => service !== '');

    const receiver: MessageReceiver = {
      onMessage(topic: string, payload: Buffer) {
        const fleetDevice = gateway ? subDeviceOfTopic(connection, topic) : undefined;
        const from = fleetDevice ?? device;
        const isSubDevice = subDevice !== undefined || fleetDevice !== undefined;
        let command;
        try {
          command = readCommand(from, topic, payload);
        } catch (err) {
          node.error(localizeError(RED, err).message, { topic, payload } as NodeMessage);
          return;
        }
        // Services are narrowed by their topic; a classic RRPC says which service only inside its Alink body.
        if (!command || (services.length > 0 && command.service && command.alink.kind === 'rrpc' && !services.includes(command.service)))
          return;
        const alink: Record<string, unknown> = { ...command.alink };
        if (autoReplySet && command.alink.kind === 'set') {
          const answer = buildAnswer(command.alink, 200, {});
          const reported: PublishCallback = (error) => {
            if (error) node.error(localizeError(RED, error).message, { topic: answer.topic } as NodeMessage);
          };
          const manager = subDevice?.manager ?? gateway;
          if (isSubDevice && manager) publishAsSubDevice(manager, from, answer.topic, answer.payload, { qos: 0 }, reported);
          else connection.publish(answer.topic, answer.payload, { qos: 0 }, reported);
          alink.autoReplied = true;
        }
        const msg: Record<string, unknown> = { topic, payload: command.payload, method: command.method, service: command.service, alink };
        if (isSubDevice) msg.device = { productKey: from.productKey, deviceName: from.deviceName };
        node.send(msg as NodeMessage);
      },
      onSubscribeError(filter: string, error: AliyunIotError) {
        node.status(errorStatus('subscribe-denied'));
        node.error(localizeError(RED, error).message, { topic: filter } as NodeMessage);
      },
    };
    onClose((removed) => connection.unsubscribeAll(receiver, removed));
    // As a sub-device: its command topics, taken while it is online through the gateway.
    const subDeviceFilters = subDevice ? new SubDeviceSubscriptions(subDevice, receiver) : undefined;
    if (subDeviceFilters) {
      onSubDeviceStatus((status) => subDeviceFilters.onStatus(status));
      onClose((removed) => subDeviceFilters.close(removed));
    }

    try {
      const invalid = services.find((service) => !IDENTIFIER_PATTERNS.thingIdentifier.test(service));
      if (invalid !== undefined) throw new AliyunIotError('SERVICES_INVALID', { value: invalid });
      const rrpcTopic = config.rrpcTopic ? (subDevice ?? connection).expandTopic(config.rrpcTopic) : undefined;
      if (rrpcTopic !== undefined && !rrpcTopic.startsWith(`/${productKey}/${deviceName}/user/`)) {
        throw new AliyunIotError('RRPC_TOPIC_INVALID', { topic: rrpcTopic });
      }
      for (const filter of commandFilters(device, services, rrpcTopic)) {
        if (subDeviceFilters) subDeviceFilters.add(filter, 0);
        else connection.subscribe(receiver, filter, 0);
      }
      // What the auto-subscription brings for every sub-device: local filters, no SUBSCRIBE.
      if (!subDevice) {
        const fleetFilters = commandFilters({ productKey: '+', deviceName: '+' }, services, undefined);
        onClose(
          whenSubDeviceManager(connection, (manager) => {
            gateway = manager;
            for (const filter of fleetFilters) connection.subscribe(receiver, filter, 0);
          }),
        );
      }
    } catch (err) {
      node.status(errorStatus('config-error'));
      node.error(localizeError(RED, err).message);
    }
  }

  RED.nodes.registerType('aliyun-iot-command', AliyunIotCommandNode);
};
