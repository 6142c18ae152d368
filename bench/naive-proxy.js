// The calibration peer: the most naive Node proxy on an undici Pool (no routing, no
// cookies, no logging). The gap between it and servoy-lb is what our features cost.
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, target] = [Number(process.argv[2]), process.argv[3]];
const pool = new Pool(target, { pipelining: 1 });
const server = createServer((req, res) => {
  pool.request({ path: req.url, method: req.method, headers: req.headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }).then(
    ({ statusCode, headers, body }) => {
      delete headers.connection;
      delete headers['keep-alive'];
      delete headers['transfer-encoding'];
      res.writeHead(statusCode, headers);
      body.pipe(res);
    },
    () => {
      res.statusCode = 502;
      res.end();
    },
  );
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
