// Prints the TOTP code (RFC 6238: SHA-1, 6 digits, 30 s) of a base32
// secret at a unix time in seconds, computed by otplib, not by Flowgate.
// Usage: node totp.js SECRET UNIX_SECONDS
import otplib from "otplib";

const [secret, at] = process.argv.slice(2);
if (!secret || !at || !/^\d+$/.test(at)) {
  console.error("usage: node totp.js SECRET UNIX_SECONDS");
  process.exit(2);
}
const { authenticator } = otplib;
authenticator.options = { epoch: Number(at) * 1000, step: 30, digits: 6 };
console.log(authenticator.generate(secret));
