import * as fs from 'fs';
import * as path from 'path';

/** The files the appliance description lays over the image root: services, firewall, accounts. */

const APPLIANCE = path.join(__dirname, '../../image-recipes/sealed-inference-appliance');
const overlay = (file: string) => fs.readFileSync(path.join(APPLIANCE, 'root', file), 'utf8');
const unit = (name: string) => overlay(`usr/lib/systemd/system/${name}`);
const directives = (text: string) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('['));

describe('sealed-inference-appliance.service', () => {
  const service = directives(unit('sealed-inference-appliance.service'));

  test('runs the bundle with Node.js as its own user, with the TPM through group tss', () => {
    expect(service).toEqual(
      expect.arrayContaining([
        'User=sealed-inference',
        'SupplementaryGroups=tss',
        'ExecStart=/usr/bin/node /opt/sealed-inference/appliance.js',
        'DevicePolicy=closed',
        'DeviceAllow=/dev/tpmrm0 rw',
      ]),
    );
  });

  test('is hardened', () => {
    expect(service).toEqual(
      expect.arrayContaining([
        'ProtectSystem=strict',
        'ProtectHome=yes',
        'PrivateTmp=yes',
        'NoNewPrivileges=yes',
        'CapabilityBoundingSet=',
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      ]),
    );
    // V8's JIT needs writable and executable memory: the directive would stop Node.js.
    expect(service.filter((line) => line.startsWith('MemoryDenyWriteExecute'))).toEqual([]);
  });

  test('keeps the model in memory only', () => {
    expect(service).toEqual(
      expect.arrayContaining(['RequiresMountsFor=/var/lib/sealed-inference', 'StateDirectory=sealed-inference', 'RuntimeDirectory=sealed-inference']),
    );
    const mount = directives(unit('var-lib-sealed\\x2dinference.mount'));
    expect(mount).toEqual(expect.arrayContaining(['What=tmpfs', 'Type=tmpfs', 'Where=/var/lib/sealed-inference']));
  });

  test("unseals with glibc's malloc keeping freed memory, which the benchmark measures", () => {
    expect(service).toEqual(
      expect.arrayContaining(['Environment=MALLOC_TRIM_THRESHOLD_=268435456', 'Environment=MALLOC_MMAP_THRESHOLD_=33554432']),
    );
  });
});

describe('ollama.service', () => {
  const service = directives(unit('ollama.service'));

  test('listens on the loopback only, as its own user, with models in memory', () => {
    expect(service).toEqual(
      expect.arrayContaining([
        'User=ollama',
        'Environment=OLLAMA_HOST=127.0.0.1:11434',
        'Environment=OLLAMA_MODELS=/var/lib/ollama/models',
        'IPAddressDeny=any',
        'IPAddressAllow=localhost',
        'ProtectSystem=strict',
        'NoNewPrivileges=yes',
        'CapabilityBoundingSet=',
      ]),
    );
    const mount = directives(unit('var-lib-ollama.mount'));
    expect(mount).toEqual(expect.arrayContaining(['What=tmpfs', 'Type=tmpfs', 'Where=/var/lib/ollama']));
  });
});

test('the firewall admits only TCP 3000 from outside', () => {
  expect(overlay('etc/sysconfig/nftables.conf')).toContain('include "/etc/nftables/sealed-inference.nft"');
  const ruleset = overlay('etc/nftables/sealed-inference.nft');
  const input = ruleset.slice(ruleset.indexOf('chain input'), ruleset.indexOf('chain forward'));
  expect(input).toContain('policy drop;');
  const tcpPorts = [...input.matchAll(/tcp dport (\S+)/g)].map((m) => m[1]);
  expect(tcpPorts).toEqual(['3000']);
});

test('the firewall lets DNS out only to the Amazon-provided resolver, which systemd-resolved is told to use', () => {
  const ruleset = overlay('etc/nftables/sealed-inference.nft');
  const output = ruleset.slice(ruleset.indexOf('chain output'));
  const dnsRules = output.split('\n').map((line) => line.trim()).filter((line) => /dport 53\b/.test(line));
  expect(dnsRules).toEqual(['ip daddr 169.254.169.253 udp dport 53 accept', 'ip daddr 169.254.169.253 tcp dport 53 accept']);
  expect(directives(overlay('etc/systemd/resolved.conf.d/90-sealed-inference.conf'))).toEqual([
    'DNS=169.254.169.253', 'FallbackDNS=', 'LLMNR=no', 'MulticastDNS=no',
  ]);
  expect(directives(overlay('etc/systemd/networkd.conf.d/90-sealed-inference.conf'))).toEqual(['UseDNS=no', 'UseDNS=no']);
});

test('service accounts have no login shell', () => {
  const users = overlay('usr/lib/sysusers.d/sealed-inference.conf')
    .split('\n')
    .filter((line) => line.startsWith('u '));
  expect(users.map((line) => line.split(/\s+/)[1])).toEqual(['sealed-inference', 'ollama']);
  for (const line of users) expect(line).toMatch(/\/usr\/sbin\/nologin$/);
});

test('config.sh locks root, refuses passwords, masks every getty and enables the services', () => {
  const config = fs.readFileSync(path.join(APPLIANCE, 'config.sh'), 'utf8');
  expect(config).toContain('passwd --lock root');
  expect(config).toMatch(/systemctl mask getty@\.service serial-getty@\.service/);
  expect(config).toMatch(/systemctl enable nftables\.service/);
  expect(config).toMatch(/systemctl enable ollama\.service sealed-inference-appliance\.service/);
  expect(config).toMatch(/sha256sum --check --strict/);
  expect(config).not.toMatch(/curl|wget/);
});

test('config.sh refuses every remote access package the description keeps out', () => {
  const ignored = [...fs.readFileSync(path.join(APPLIANCE, 'appliance.kiwi'), 'utf8').matchAll(/<ignore name="([^"]+)"\/>/g)];
  const refused = /for package in ([^;]+); do\n\s+if rpm -q/.exec(fs.readFileSync(path.join(APPLIANCE, 'config.sh'), 'utf8'));
  expect(ignored.map((match) => match[1])).toEqual(refused?.[1].split(' '));
  expect(refused?.[1]).toContain('openssh-server');
});
