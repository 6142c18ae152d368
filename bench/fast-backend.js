// A backend that costs as little as possible, so the benchmark measures the proxy:
// a fixed small body, keep-alive, and to a request without a JSESSIONID a new one (a
// counter, with a route suffix), as an application server starts a session.
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
const route = process.argv[3] ?? 'fast';
const body = Buffer.from('hello from a fast backend\n');
let sessions = 0;
const server = createServer((req, res) => {
  const headers = { 'content-type': 'text/plain', 'content-length': body.length };
  if (!req.headers.cookie?.includes('JSESSIONID=')) headers['set-cookie'] = `JSESSIONID=${(++sessions).toString(16).padStart(16, '0')}.${route}; Path=/; HttpOnly`;
  res.writeHead(200, headers);
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
