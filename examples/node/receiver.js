// A hotspot-webhooks receiver in Node 20 with no framework and no npm dependency.
//
//   API_KEY=... INBOX_DIR=/var/lib/hotspot-inbox PORT=8000 node examples/node/receiver.js
//
// It verifies the signature, keeps each event once (delivery is at-least-once: a retry brings
// the same event again) and answers at once: 200 for a verified event, new or already received;
// 401 for a bad signature (never trusted, and retried by the sender); 500 if it could not be
// stored (sent again later). The slow work is done by whatever reads INBOX_DIR afterwards.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs/promises');
const http = require('node:http');
const path = require('node:path');

const API_KEY = process.env.API_KEY;
const INBOX_DIR = process.env.INBOX_DIR || path.join(__dirname, 'inbox');
const MAX_BODY = 1024 * 1024;
const TOLERANCE_SECONDS = 5 * 60;

if (!API_KEY) {
  console.error('set API_KEY to the webhook\'s API key');
  process.exit(2);
}

function hmac(message) {
  return crypto.createHmac('sha256', API_KEY).update(message).digest('base64');
}

// Compare in constant time, so that an attacker learns nothing from how long a refusal takes.
function sameText(a, b) {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

// The Standard Webhooks signature: v1,base64(HMAC-SHA256(api key, "{id}.{timestamp}.{body}")).
// It covers the event id and the time of sending, not only the body, so a captured request
// cannot be replayed later or under another id; and during a key rotation it carries one
// signature per key (new and old, space-separated), so no delivery is refused while you
// switch keys. (The original X-Hotspotsystem-Hmac-Sha256 header is base64(HMAC-SHA256(api key,
// raw body)): the same hmac(body), compared the same way; see examples/php.)
function verified(headers, body) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !signatures || !/^\d+$/.test(timestamp || '')) {
    return false;
  }
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false; // too old (or from the future): a replay, or a clock to fix
  }
  const expected = 'v1,' + hmac(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]));
  return signatures.split(' ').some((signature) => sameText(expected, signature));
}

// Keep the event once; true if it is new. One file per event id (webhook-id, the same on every
// retry), named after its hash. Written aside, then linked into place: link() fails if the name
// exists, so two copies arriving at once keep one, across restarts too, and a crash never
// leaves half a file.
async function remember(event) {
  const name = crypto.createHash('sha256').update(event.id).digest('hex');
  const final = path.join(INBOX_DIR, `${name}.json`);
  const aside = path.join(INBOX_DIR, `.new-${name}-${crypto.randomUUID()}`);
  await fs.writeFile(aside, JSON.stringify(event), { mode: 0o600 });
  try {
    await fs.link(aside, final);
    return true;
  } catch (error) {
    if (error.code === 'EEXIST') {
      return false;
    }
    throw error;
  } finally {
    await fs.unlink(aside);
  }
}

function answer(response, status, text) {
  response.writeHead(status, { 'Content-Type': 'text/plain' });
  response.end(text);
}

async function handle(request, response) {
  if (request.method !== 'POST') {
    return answer(response, 405, 'POST only');
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY) {
      return answer(response, 413, 'body too large');
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks); // the raw bytes: verify them before parsing
  if (!verified(request.headers, body)) {
    return answer(response, 401, 'invalid signature');
  }
  const id = request.headers['webhook-id']; // signed, the same on every retry
  const event = {
    id,
    type: request.headers['x-hotspotsystem-event'] || null,
    location_id: request.headers['x-hotspotsystem-location'] || null,
    payload: JSON.parse(body.toString('utf8')),
  };
  const isNew = await remember(event);
  console.log(`${isNew ? 'received' : 'already received'} ${event.type} ${id}`);
  return answer(response, 200, isNew ? 'OK' : 'OK (already received)');
}

fs.mkdir(INBOX_DIR, { recursive: true, mode: 0o700 }).then(() => {
  const server = http.createServer((request, response) => {
    handle(request, response).catch((error) => {
      console.error(error);
      answer(response, 500, 'could not store the event');
    });
  });
  const port = Number(process.env.PORT || 8000);
  const host = process.env.HOST || '127.0.0.1';
  server.listen(port, host, () => console.log(`listening on http://${host}:${port}/`));
});
