import type { Image } from '@aws-sdk/client-ec2';
import * as fs from 'fs';
import * as path from 'path';

/**
 * Stand-ins for the tools image-recipes/build-and-publish.sh runs: kiwi-ng (with its mkfs.erofs and veritysetup),
 * coldsnap, the AWS CLI, curl and id. Each is a small Node.js script that logs its arguments to `STUB_LOG` and answers
 * as the real tool would: kiwi-ng leaves a raw disk and `STUB_MEASUREMENTS` as pcr_measurements.json, curl writes
 * `STUB_OLLAMA_ARCHIVE`, the AWS CLI finds `STUB_EXISTING_IMAGE` (or none) and registers {@link NEW_IMAGE_ID}.
 */

export const SNAPSHOT_ID = 'snap-0123456789abcdef0';
export const NEW_IMAGE_ID = 'ami-0fedcba9876543210';
export const IMAGE_BUILD_TOOLS = ['kiwi-ng', 'coldsnap', 'aws', 'curl', 'id', 'mkfs.erofs', 'veritysetup'];

/** One call of a stand-in, as logged. */
export interface ToolCall {
  tool: string;
  args: string[];
}

const STAND_IN = `#!${process.execPath}
const fs = require('fs');
const path = require('path');
const tool = path.basename(process.argv[1]);
const args = process.argv.slice(2);
fs.appendFileSync(process.env.STUB_LOG, JSON.stringify({ tool, args }) + '\\n');
const after = (name) => args[args.indexOf(name) + 1];
switch (tool) {
  case 'id':
    process.stdout.write('0\\n');
    break;
  case 'kiwi-ng':
    if (args.includes('--version')) { process.stdout.write('KIWI (next generation) version 10.2.33\\n'); break; }
    {
      const target = after('--target-dir');
      fs.mkdirSync(target, { recursive: true });
      fs.writeFileSync(path.join(target, 'sealed-inference-appliance.x86_64-0.1.0.raw'), 'disk');
      fs.copyFileSync(process.env.STUB_MEASUREMENTS, path.join(target, 'pcr_measurements.json'));
    }
    break;
  case 'curl':
    fs.writeFileSync(after('--output'), process.env.STUB_OLLAMA_ARCHIVE);
    break;
  case 'coldsnap':
    process.stdout.write('${SNAPSHOT_ID}\\n');
    break;
  case 'aws':
    if (args.includes('describe-images')) process.stdout.write((process.env.STUB_EXISTING_IMAGE || 'None') + '\\n');
    if (args.includes('register-image')) process.stdout.write('${NEW_IMAGE_ID}\\n');
    break;
}
`;

/** Writes the stand-ins for `tools` into `directory`, executable. */
export function installImageBuildTools(directory: string, tools: readonly string[] = IMAGE_BUILD_TOOLS): void {
  for (const tool of tools) fs.writeFileSync(path.join(directory, tool), STAND_IN, { mode: 0o755 });
}

/** The calls logged in `log`, in order. */
export function readToolCalls(log: string): ToolCall[] {
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as ToolCall);
}

/** The Key=…,Value=… pairs of a create-tags call, as a map. */
export function tagsOf(call: ToolCall): Map<string, string> {
  const values = call.args.slice(call.args.indexOf('--tags') + 1);
  return new Map(
    values.map((pair) => {
      const match = /^Key=([^,]+),Value=(.*)$/.exec(pair);
      if (!match) throw new Error(`not a tag: ${pair}`);
      return [match[1], match[2]];
    }),
  );
}

/** The image EC2 would describe after a create-tags call: available, attestable, with those tags. */
export function taggedImage(imageId: string, tagging: ToolCall): Image {
  return {
    ImageId: imageId,
    State: 'available',
    BootMode: 'uefi',
    TpmSupport: 'v2.0',
    ImdsSupport: 'v2.0',
    Tags: [...tagsOf(tagging)].map(([Key, Value]) => ({ Key, Value })),
  };
}
