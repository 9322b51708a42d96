// The appliance's chat page: follows GET /api/status until the model is ready, then chats through the
// OpenAI-compatible POST /v1/chat/completions, showing the answer as its server-sent events arrive. Everything it
// shows goes through textContent, never HTML.
'use strict';

(() => {
  const LOADING_POLL_MS = 1000;
  const SETTLED_POLL_MS = 5000;

  const PHASES = {
    starting: 'Starting',
    waiting: 'Waiting for the sealed model',
    attesting: 'Attesting this instance and asking KMS for the model key',
    fetching: 'Fetching the sealed model manifest and wrapped key',
    unsealing: 'Unsealing the model',
    loading: 'Loading the model into the inference server',
    ready: 'Ready',
    failed: 'Failed',
  };

  const element = (id) => document.getElementById(id);
  const view = {
    phase: element('phase'),
    progress: element('progress'),
    progressText: element('progress-text'),
    failure: element('failure'),
    chat: element('chat'),
    messages: element('messages'),
    composer: element('composer'),
    prompt: element('prompt'),
    send: element('send'),
    chatError: element('chat-error'),
    modelName: element('model-name'),
    modelSha256: element('model-sha256'),
    modelMeasurement: element('model-measurement'),
    verifyCommand: element('verify-command'),
  };

  /** The conversation so far, sent whole with each question: the appliance keeps none of it. */
  const history = [];
  let streaming = false;

  view.verifyCommand.textContent = `sealed-inference verify ${window.location.origin}`;

  function formatBytes(bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
  }

  function showStatus(status) {
    const label = PHASES[status.phase] || status.phase;
    view.phase.textContent = status.phase === 'waiting' ? `${label}: ${status.waitingFor}`
      : status.phase === 'ready' || status.phase === 'failed' ? label : `${label}…`;
    view.phase.dataset.phase = status.phase;

    const progress = status.phase !== 'ready' && status.phase !== 'failed' ? status.progress : undefined;
    view.progress.hidden = !progress;
    view.progressText.hidden = !progress;
    if (progress) {
      view.progress.max = Math.max(progress.total, 1);
      view.progress.value = Math.min(progress.bytes, progress.total);
      const percent = progress.total > 0 ? Math.floor((100 * progress.bytes) / progress.total) : 0;
      view.progressText.textContent = `${formatBytes(progress.bytes)} of ${formatBytes(progress.total)} (${percent}%)`;
    }

    view.failure.hidden = status.phase !== 'failed';
    if (status.phase === 'failed') {
      const where = PHASES[status.failedPhase] || status.failedPhase || 'an unknown phase';
      const during = where.charAt(0).toLowerCase() + where.slice(1);
      const reason = status.reason || 'no reason given';
      view.failure.textContent = `Failed while ${during} (${status.failedPhase}): ${reason}`;
    }

    if (status.model) {
      view.modelName.textContent = status.model.name;
      view.modelSha256.textContent = status.model.sha256;
      view.modelMeasurement.textContent = status.model.measurement;
    }
    view.chat.hidden = status.phase !== 'ready';
  }

  async function pollStatus() {
    let delay = LOADING_POLL_MS;
    try {
      const response = await fetch('/api/status', { cache: 'no-store' });
      if (!response.ok) throw new Error(`status ${response.status}`);
      const status = await response.json();
      showStatus(status);
      if (status.phase === 'ready' || status.phase === 'failed') delay = SETTLED_POLL_MS;
    } catch (error) {
      view.phase.textContent = `Cannot reach the appliance (${error.message}); retrying…`;
    }
    setTimeout(pollStatus, delay);
  }

  function addMessage(role, text) {
    const item = document.createElement('li');
    item.className = `message ${role}`;
    const who = document.createElement('span');
    who.className = 'role';
    who.textContent = role === 'user' ? 'You' : 'Model';
    const body = document.createElement('p');
    body.className = 'content';
    body.textContent = text;
    item.append(who, body);
    view.messages.append(item);
    item.scrollIntoView({ block: 'end' });
    return body;
  }

  /**
   * Reads the server-sent events of a streamed chat completion (`data: {chunk}` each, `data: [DONE]` last), appending
   * each piece of the assistant's message as it arrives.
   */
  async function streamAnswer(response, target) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    let answer = '';
    for (;;) {
      const { value, done } = await reader.read();
      pending += decoder.decode(value || new Uint8Array(), { stream: !done }).replace(/\r\n?/g, '\n');
      const events = pending.split('\n\n');
      pending = events.pop();
      for (const event of events) {
        const data = event.split('\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n');
        if (data === '') continue;
        if (data === '[DONE]') return answer;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || 'the model failed');
        const content = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
        if (content) {
          answer += content;
          target.textContent = answer;
        }
      }
      if (done) throw new Error('the answer ended early');
    }
  }

  // The service takes at most 64 KiB a request: the oldest exchanges (a question and its answer) are left out, so
  // a long conversation goes on, still starting with a question.
  const MAX_REQUEST_BYTES = 60 * 1024;
  const encoder = new TextEncoder();

  function recentTurns() {
    let start = 0;
    const size = (from) => encoder.encode(JSON.stringify({ messages: history.slice(from), stream: true })).length;
    while (start < history.length - 1 && size(start) > MAX_REQUEST_BYTES) start += 2;
    return history.slice(start);
  }

  async function ask(question) {
    streaming = true;
    view.send.disabled = true;
    view.chatError.hidden = true;
    history.push({ role: 'user', content: question });
    addMessage('user', question);
    const target = addMessage('assistant', '');
    target.parentElement.classList.add('streaming');
    try {
      // No model named: the appliance always answers with the one it serves.
      const response = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: recentTurns(), stream: true }),
      });
      if (!response.ok) {
        const refusal = await response.json().catch(() => ({}));
        throw new Error((refusal.error && refusal.error.message) || `the appliance answered ${response.status}`);
      }
      history.push({ role: 'assistant', content: await streamAnswer(response, target) });
    } catch (error) {
      history.pop();
      if (target.textContent === '') target.parentElement.remove();
      view.chatError.textContent = `No answer: ${error.message}`;
      view.chatError.hidden = false;
    } finally {
      target.parentElement.classList.remove('streaming');
      streaming = false;
      view.send.disabled = false;
    }
  }

  view.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const question = view.prompt.value.trim();
    if (question === '' || streaming) return;
    view.prompt.value = '';
    ask(question);
  });

  view.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      view.composer.requestSubmit();
    }
  });

  pollStatus();
})();
