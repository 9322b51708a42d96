/**
 * The gateway's chat page: what was verified, in plain words, and a chat through the gateway's own
 * `/v1/chat/completions`. Embedded as strings, so that the compiled CLI serves it without files beside it; no CDN,
 * no inline script or style (the page is served under a `default-src 'self'` policy).
 */

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verified chat</title>
<link rel="icon" href="/favicon.svg">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
<h1>Verified chat</h1>
<section id="verification" aria-live="polite"><p>Checking what serves you…</p></section>
</header>
<main>
<ol id="conversation"></ol>
<form id="chat">
<label for="prompt">Message</label>
<textarea id="prompt" rows="3" required></textarea>
<button type="submit">Send</button>
</form>
</main>
</body>
</html>
`;

const APP_CSS = `body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 48rem; padding: 1rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; }
#verification { border-radius: 0.5rem; padding: 0.5rem 1rem; background: #f4f4f4; }
#verification.verified { background: #e7f6e7; }
#verification.failed { background: #fbe4e4; }
#verification dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
#verification dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
#conversation { list-style: none; padding: 0; }
#conversation li { white-space: pre-wrap; margin: 0.5rem 0; padding: 0.5rem; border-radius: 0.5rem; }
#conversation li.user { background: #eef3fb; }
#conversation li.assistant { background: #f7f7f7; }
#conversation li.error { background: #fbe4e4; }
form { display: grid; gap: 0.5rem; }
textarea { font: inherit; }
`;

const APP_JS = `'use strict';
var messages = [];

function element(tag, text, className) {
  var node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showVerification(health) {
  var section = document.getElementById('verification');
  section.replaceChildren();
  section.className = health.verified ? 'verified' : 'failed';
  if (health.fleet) {
    showFleet(section, health);
    return;
  }
  if (!health.verified) {
    section.append(element('p', 'Not verified: nothing is sent to the service. ' + health.reason));
    return;
  }
  section.append(element('p', 'Verified at ' + new Date(health.verifiedAt).toLocaleString() +
    ': every connection to the service is checked with a fresh attestation before any message is sent over it.'));
  var facts = element('dl');
  var pcrs = Object.keys(health.pcrs).map(function (index) { return 'PCR' + index + ' ' + health.pcrs[index]; }).join('\\n');
  [
    ['Service', health.service],
    ['Image', health.image || 'unnamed'],
    ['Model (SHA-384)', health.servedModels.length ? health.servedModels.join(', ') : 'none loaded yet'],
    ['TLS key (SPKI SHA-256)', health.tlsSpkiSha256],
    ['PCRs', pcrs],
  ].forEach(function (fact) {
    facts.append(element('dt', fact[0]), element('dd', fact[1]));
  });
  section.append(facts);
}

function showFleet(section, health) {
  section.append(element('p', health.verified
    ? 'Verified fleet ' + health.service + ': every connection, whichever instance it ends in, is checked with a fresh ' +
      'attestation before any message is sent over it; an instance that fails is refused.'
    : 'Not verified: no instance of ' + health.service + ' verified lately, so nothing is sent. ' + health.reason));
  var instances = element('dl');
  Object.keys(health.instances).forEach(function (key) {
    var instance = health.instances[key];
    var module = instance.moduleId ? ', module ' + instance.moduleId : '';
    var state = instance.verified
      ? 'verified at ' + new Date(instance.verifiedAt).toLocaleString() + module + ', image ' + (instance.image || 'unnamed') +
        ', model ' + (instance.servedModels.length ? instance.servedModels.join(', ') : 'none loaded yet')
      : 'REFUSED at ' + new Date(instance.refusedAt).toLocaleString() + module + ': ' + instance.failedCheck + ': ' + instance.reason;
    instances.append(element('dt', 'Instance with TLS key (SPKI SHA-256) ' + key), element('dd', state));
  });
  section.append(instances);
}

function refreshVerification() {
  return fetch('/health').then(function (response) { return response.json(); }).then(showVerification);
}

function readEvents(response, onText) {
  var reader = response.body.getReader();
  var decoder = new TextDecoder();
  var pending = '';
  function next() {
    return reader.read().then(function (chunk) {
      if (chunk.done) return;
      pending += decoder.decode(chunk.value, { stream: true });
      var events = pending.split('\\n\\n');
      pending = events.pop();
      events.forEach(function (event) {
        var data = event.replace(/^data: ?/, '');
        if (data === '[DONE]' || data === event) return;
        var delta = JSON.parse(data).choices[0].delta;
        if (delta && delta.content) onText(delta.content);
      });
      return next();
    });
  }
  return next();
}

function send(event) {
  event.preventDefault();
  var prompt = document.getElementById('prompt');
  var conversation = document.getElementById('conversation');
  messages.push({ role: 'user', content: prompt.value });
  conversation.append(element('li', prompt.value, 'user'));
  prompt.value = '';
  var answer = element('li', '', 'assistant');
  conversation.append(answer);
  fetch('/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'served', stream: true, messages: messages }),
  }).then(function (response) {
    if (!response.ok) {
      return response.json().then(function (body) { throw new Error(body.error ? body.error.message : response.statusText); });
    }
    return readEvents(response, function (text) { answer.textContent += text; });
  }).then(function () {
    messages.push({ role: 'assistant', content: answer.textContent });
  }, function (error) {
    messages.pop();
    answer.className = 'error';
    answer.textContent = error.message;
  }).then(refreshVerification);
}

document.getElementById('chat').addEventListener('submit', send);
refreshVerification();
`;

const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2e7d32"/>` +
  `<path d="M4 8.5l2.5 2.5L12 5.5" stroke="#fff" stroke-width="2" fill="none"/></svg>`;

/** A file of the page. */
export interface GatewayPageFile {
  readonly contentType: string;
  readonly body: string;
}

/** The page's files by URL path. */
export const GATEWAY_PAGE: ReadonlyMap<string, GatewayPageFile> = new Map([
  ['/', { contentType: 'text/html; charset=utf-8', body: INDEX_HTML }],
  ['/app.css', { contentType: 'text/css; charset=utf-8', body: APP_CSS }],
  ['/app.js', { contentType: 'text/javascript; charset=utf-8', body: APP_JS }],
  ['/favicon.svg', { contentType: 'image/svg+xml', body: FAVICON_SVG }],
]);
