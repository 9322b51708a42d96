import type { Image } from '@aws-sdk/client-ec2';
import * as http from 'http';
import type { AddressInfo } from 'net';

/** One answer of the fake: an image set, or an EC2 error with its HTTP status. */
export type FakeEc2Answer = { images: Image[] } | { status: number; code: string; message: string };

/**
 * A local HTTP server speaking the EC2 Query protocol for DescribeImages: form-encoded requests, XML responses.
 * Answers are served in order; the last one repeats. Point the SDK at it with `AWS_ENDPOINT_URL_EC2`.
 */
export class FakeEc2 {
  public static async start(answers: FakeEc2Answer[]): Promise<FakeEc2> {
    const fake = new FakeEc2(answers);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** The form parameters of every request received. */
  public readonly requests: URLSearchParams[] = [];
  private readonly server: http.Server;

  private constructor(private readonly answers: FakeEc2Answer[]) {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const params = new URLSearchParams(body);
        this.requests.push(params);
        const answer = this.answers[Math.min(this.requests.length, this.answers.length) - 1];
        res.setHeader('content-type', 'text/xml;charset=UTF-8');
        if (params.get('Action') !== 'DescribeImages') {
          res.statusCode = 400;
          res.end(errorXml('InvalidAction', `unexpected action ${params.get('Action')}`));
        } else if ('images' in answer) {
          res.end(describeImagesXml(answer.images));
        } else {
          res.statusCode = answer.status;
          res.end(errorXml(answer.code, answer.message));
        }
      });
    });
  }

  public get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  public async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const element = (name: string, value: string | undefined) =>
  value === undefined ? '' : `<${name}>${escape(value)}</${name}>`;

function describeImagesXml(images: Image[]): string {
  const items = images.map(
    (image) =>
      '<item>' +
      element('imageId', image.ImageId) +
      element('imageState', image.State) +
      element('imageOwnerId', image.OwnerId) +
      element('bootMode', image.BootMode) +
      element('tpmSupport', image.TpmSupport) +
      element('imdsSupport', image.ImdsSupport) +
      `<tagSet>${(image.Tags ?? []).map((t) => `<item>${element('key', t.Key)}${element('value', t.Value)}</item>`).join('')}</tagSet>` +
      '</item>',
  );
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' +
    `<requestId>fake</requestId><imagesSet>${items.join('')}</imagesSet></DescribeImagesResponse>`
  );
}

function errorXml(code: string, message: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>' +
    `${element('Code', code)}${element('Message', message)}</Error></Errors><RequestID>fake</RequestID></Response>`
  );
}

/**
 * Runs `body` with the SDK pointed at `endpoint` with dummy credentials, restoring the environment after.
 * `overrides` changes or (with `undefined`) removes more variables, e.g. `AWS_REGION`.
 */
export async function withEc2Endpoint<T>(
  endpoint: string,
  body: () => Promise<T>,
  overrides: Record<string, string | undefined> = {},
): Promise<T> {
  const env = {
    AWS_ENDPOINT_URL_EC2: endpoint,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKEFAKE',
    AWS_SECRET_ACCESS_KEY: 'fake-secret',
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    ...overrides,
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  try {
    return await body();
  } finally {
    set(saved);
  }
}

/**
 * Starts a fake answering `answers`, runs `body` with the SDK pointed at it (see {@link withEc2Endpoint}), stops it,
 * and returns what `body` returned with the requests the fake received.
 */
export async function withFakeEc2<T>(
  answers: FakeEc2Answer[],
  body: () => Promise<T>,
  overrides: Record<string, string | undefined> = {},
): Promise<{ result: T; requests: URLSearchParams[] }> {
  const fake = await FakeEc2.start(answers);
  try {
    const result = await withEc2Endpoint(fake.endpoint, body, overrides);
    return { result, requests: fake.requests };
  } finally {
    await fake.stop();
  }
}
