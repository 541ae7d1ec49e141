// Reads a text/event-stream with fetch(), so the access token travels in the Authorization header (EventSource
// cannot set headers, and a token in the URL would end up in logs and history). Reconnects after a drop, and
// after `auth-expired` with a refreshed token.

export function followEvents(session, path, { onEvent, onState }) {
  const controller = new AbortController();
  let stopped = false;

  const dispatch = (block) => {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
    }
    return { event, data };
  };

  const run = async () => {
    let delay = 1000;
    while (!stopped) {
      try {
        const res = await fetch(path, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal: controller.signal, credentials: 'omit' });
        if (res.status === 401) {
          await session.refresh();
          continue;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        onState?.('live');
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let expired = false;
        while (!expired) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const { event, data } = dispatch(buf.slice(0, end));
            buf = buf.slice(end + 2);
            if (event === 'auth-expired') {
              expired = true;
              await session.refresh();
            } else if (event !== 'ready' && event !== 'shutdown' && data) {
              onEvent(event, JSON.parse(data));
            }
          }
        }
      } catch (e) {
        if (stopped) return;
        onState?.(`reconnecting (${e.message ?? e})`);
      }
      if (stopped) return;
      onState?.('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
  return () => {
    stopped = true;
    controller.abort();
  };
}
