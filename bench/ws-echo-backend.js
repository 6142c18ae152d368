// A WebSocket backend for bench/websockets.js and bench/ws-relay.js, in its own process (its
// file descriptors are not the bench's): a plain ws server that echoes every message. A plain
// GET gets 426 Upgrade Required (the balancer's health check is told to expect it).
//   node bench/ws-echo-backend.js PORT
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) }, () => process.stdout.write(`listening ${wss.address().port}\n`));
wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
process.on('SIGTERM', () => process.exit(0));
