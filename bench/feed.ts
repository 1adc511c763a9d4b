// Child process: the device feed of (f) and (g). It publishes 100-byte messages from the generator device, at most
// `window` more than the consumer (in the parent) has counted, so that the devices' work does not share the
// measured consumer's thread, as it does not in a deployment.
import mqtt, { MqttClient } from 'mqtt';
import { padded } from './load';
import { DEVICES, rawClientOptions } from './setup';

export type FeedRequest =
  /** Connect, then publish a probe `p<run>:` every 100 ms until `go`. */
  | { cmd: 'start'; port: number; topics: string[]; run: number; n: number; window: number }
  /** The consumer saw a probe: publish `m<run>:<seq>:…` from now on. */
  | { cmd: 'go' }
  /** How many of the run's messages the consumer has counted. */
  | { cmd: 'counted'; received: number }
  | { cmd: 'stop' };

export type FeedReply = { cmd: 'connected' } | { cmd: 'stopped'; sent: number } | { cmd: 'failed'; error: string };

const PROBE_INTERVAL_MS = 100;

class Feed {
  private sent = 0;
  private received = 0;
  private going = false;
  private readonly probe: NodeJS.Timeout;

  constructor(
    private readonly gen: MqttClient,
    private readonly request: Extract<FeedRequest, { cmd: 'start' }>,
  ) {
    const probe = padded(`p${request.run}:`);
    this.probe = setInterval(() => gen.publish(request.topics[0], probe, { qos: 0 }), PROBE_INTERVAL_MS);
    gen.publish(request.topics[0], probe, { qos: 0 });
  }

  go(): void {
    clearInterval(this.probe);
    this.going = true;
    this.pump();
  }

  counted(received: number): void {
    this.received = received;
    this.pump();
  }

  async stop(): Promise<number> {
    clearInterval(this.probe);
    this.going = false;
    await this.gen.endAsync(true);
    return this.sent;
  }

  private pump(): void {
    const { n, window, topics, run } = this.request;
    while (this.going && this.sent < n && this.sent - this.received < window) {
      const seq = this.sent++;
      this.gen.publish(topics[seq % topics.length], padded(`m${run}:${seq}:`), { qos: 0 });
    }
  }
}

if (require.main === module) {
  let feed: Feed | undefined;
  const reply = (message: FeedReply): void => {
    process.send?.(message);
  };
  process.on('message', (request: FeedRequest) => {
    if (request.cmd === 'start') {
      mqtt.connectAsync(rawClientOptions(request.port, DEVICES.gen)).then(
        (gen) => {
          feed = new Feed(gen, request);
          reply({ cmd: 'connected' });
        },
        (err: Error) => reply({ cmd: 'failed', error: err.message }),
      );
    } else if (request.cmd === 'go') feed?.go();
    else if (request.cmd === 'counted') feed?.counted(request.received);
    else if (request.cmd === 'stop') {
      const stopping = feed;
      feed = undefined;
      void (stopping?.stop() ?? Promise.resolve(0)).then((sent) => reply({ cmd: 'stopped', sent }));
    }
  });
  process.on('disconnect', () => process.exit(0));
}
