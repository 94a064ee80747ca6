// An ingest API of another stack for the tests: Node.js, express and kafkajs from the npm registry
// (pinned in the root package.json). Not ingestload's: it parses every body and re-serialises it
// as Node does (JSON.parse / JSON.stringify), and does what real APIs do to a message on the way:
//
//   node tests/e2e/apis/node_api.js --port P --bootstrap HOST:PORT --prefix gov- --truth truth.json
//        [--mode forward|enrich|wrap|batch] [--drop-every N] [--duplicate-every N] [--corrupt-every N]
//        [--topic NAME]
//
//   forward  POST /ingest/:type, one message → JSON.stringify(message) to <prefix><type>
//   enrich   the same with members of its own: {...message, receivedAt, source}
//   wrap     {"meta": {"receivedAt", "requestId"}, "data": message}
//   batch    POST /batch/:type, an array → one Kafka record {"count": n, "records": [...]}
//
// --topic writes every type to that one topic instead of <prefix><type>.
//
// Faults, by a counter of accepted messages: every Nth is dropped (answered 202, never written),
// duplicated (written twice — in batch mode, twice in its record), or corrupted (one field changed:
// Param.Floor + 1, or Header.EquipmentId + "x"). On SIGTERM it writes its own account, --truth:
// {"lost": [[producer, seq], …], "duplicated": […], "corrupted": […]}, producer as a decimal string,
// read from the envelope member with its own parsing. Kafka: acks -1, not idempotent (Tansu refuses
// kafkajs's InitProducerId); 202 only once Kafka acknowledged, 503 otherwise.
'use strict';
const express = require('express');
const { Kafka, logLevel } = require('kafkajs');
const fs = require('fs');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const mode = args.mode || 'forward';
const every = (name) => parseInt(args[name] || '0', 10);
const dropEvery = every('drop-every'), duplicateEvery = every('duplicate-every'), corruptEvery = every('corrupt-every');

const truth = { lost: [], duplicated: [], corrupted: [] };
let counter = 0;

function identityOf(message) {
  const text = message && message._ingestload;
  if (typeof text !== 'string' || text.length !== 82) return null;
  return [BigInt('0x' + text.slice(18, 34)).toString(), Number(BigInt('0x' + text.slice(34, 50)))];
}

function corrupt(message) {
  if (message.Param && typeof message.Param.Floor === 'number') message.Param.Floor += 1;
  else message.Header.EquipmentId += 'x';
}

// The fate of one accepted message: which copies of it to write (0, 1 or 2), changed or not.
function fate(message) {
  counter += 1;
  const id = identityOf(message);
  const kinds = [];
  if (dropEvery && counter % dropEvery === 0) kinds.push('lost');
  else {
    if (duplicateEvery && counter % duplicateEvery === 0) kinds.push('duplicated');
    if (corruptEvery && counter % corruptEvery === 0) { corrupt(message); kinds.push('corrupted'); }
  }
  return { id, kinds, copies: kinds.includes('lost') ? 0 : kinds.includes('duplicated') ? 2 : 1 };
}

function file(fates) {
  for (const f of fates) for (const kind of f.kinds) if (f.id) truth[kind].push(f.id);
}

async function main() {
  const kafka = new Kafka({ clientId: 'node-ingest-api', brokers: [args.bootstrap], logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: true });
  await producer.connect();
  const app = express();
  app.use(express.json({ limit: '10mb' }));
  let requestId = 0;

  const send = async (topic, values) => {
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
  };

  app.post('/ingest/:type', async (req, res) => {
    const message = req.body;
    const topic = args.topic || args.prefix + req.params.type;
    const f = fate(message);
    let record = message;
    if (mode === 'enrich') record = { ...message, receivedAt: new Date().toISOString(), source: 'node-api' };
    if (mode === 'wrap') record = { meta: { receivedAt: new Date().toISOString(), requestId: ++requestId }, data: message };
    const value = JSON.stringify(record);
    try {
      if (f.copies) await send(topic, Array(f.copies).fill(value));
      file([f]);
      res.status(202).json({ queued: true });
    } catch (e) {
      res.status(503).json({ error: String(e) });
    }
  });

  app.post('/batch/:type', async (req, res) => {
    if (!Array.isArray(req.body)) return res.status(400).json({ error: 'an array, please' });
    const fates = req.body.map(fate);
    const records = [];
    req.body.forEach((message, i) => { for (let c = 0; c < fates[i].copies; c++) records.push(message); });
    try {
      if (records.length) await send(args.topic || args.prefix + req.params.type, [JSON.stringify({ count: records.length, records })]);
      file(fates);
      res.status(202).json({ queued: req.body.length });
    } catch (e) {
      res.status(503).json({ error: String(e) });
    }
  });

  const server = app.listen(parseInt(args.port, 10), '127.0.0.1', () => console.log('ready'));
  process.on('SIGTERM', () => {
    server.close(async () => {
      await producer.disconnect();
      fs.writeFileSync(args.truth, JSON.stringify(truth));
      process.exit(0);
    });
    server.closeAllConnections();
  });
}

main().catch((e) => { console.error(e); process.exit(1); });
