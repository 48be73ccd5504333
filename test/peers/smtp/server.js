// An SMTP server for Flowgate's tests: STARTTLS with the certificate in
// SMTP_CERT/SMTP_KEY (files), AUTH PLAIN/LOGIN against SMTP_USER and
// SMTP_PASS, listening on 127.0.0.1:SMTP_PORT (0: any free port); it refuses
// recipients named nobody@ with 550, as for an unknown user. It prints
// one JSON line when listening ({"listening": PORT}) and one per message
// received ({"from", "to", "raw"}), so the test reads what arrived.
'use strict';
const fs = require('fs');
const { SMTPServer } = require('smtp-server');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const server = new SMTPServer({
  secure: false,
  key: fs.readFileSync(process.env.SMTP_KEY),
  cert: fs.readFileSync(process.env.SMTP_CERT),
  authMethods: ['PLAIN', 'LOGIN'],
  // Credentials only after STARTTLS.
  allowInsecureAuth: false,
  onAuth(auth, session, callback) {
    if (auth.username === process.env.SMTP_USER && auth.password === process.env.SMTP_PASS) {
      return callback(null, { user: auth.username });
    }
    return callback(new Error('Invalid username or password'));
  },
  // nobody@… is an unknown recipient: refused for good (550).
  onRcptTo(address, session, callback) {
    if (address.address.startsWith('nobody@')) {
      const err = new Error('No such user here');
      err.responseCode = 550;
      return callback(err);
    }
    return callback();
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      out({
        from: session.envelope.mailFrom && session.envelope.mailFrom.address,
        to: session.envelope.rcptTo.map((r) => r.address),
        secure: session.secure,
        user: session.user,
        raw: Buffer.concat(chunks).toString('utf8'),
      });
      callback();
    });
  },
  logger: false,
});

server.on('error', (err) => process.stderr.write(String(err) + '\n'));
server.listen(Number(process.env.SMTP_PORT || 0), '127.0.0.1', () => {
  out({ listening: server.server.address().port });
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
