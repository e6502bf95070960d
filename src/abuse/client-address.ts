import { BlockList, isIP, isIPv4 } from "node:net";

/**
 * Who is really calling. The TCP peer is the only address nobody can forge; `X-Forwarded-For`
 * is written by whoever sent the request, so it is believed only when the peer is one of the
 * configured proxies (GATEHOUSE_TRUSTED_PROXIES), and then only as far as the chain of trusted
 * proxies goes: walking from the right, the first hop that is not a trusted proxy is the client.
 * Anything a client prepends to the header sits left of that hop and is ignored.
 */
export type ClientAddressResolver = (peerAddress: string, forwardedFor: string | readonly string[] | undefined) => string;

export function createClientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [address = "", prefix] = entry.split("/");
    const normalised = canonicalAddress(address);
    const family = isIPv4(normalised) ? "ipv4" : "ipv6";
    if (prefix === undefined) trusted.addAddress(normalised, family);
    else trusted.addSubnet(normalised, Number(prefix), family);
  }
  const isTrusted = (address: string) => isIP(address) !== 0 && trusted.check(address, isIPv4(address) ? "ipv4" : "ipv6");

  return (peerAddress, forwardedFor) => {
    let client = canonicalAddress(peerAddress);
    if (trustedProxies.length === 0 || !isTrusted(client)) return client;
    const hops = (typeof forwardedFor === "string" ? [forwardedFor] : (forwardedFor ?? []))
      .join(",")
      .split(",")
      .map((hop) => hop.trim())
      .filter((hop) => hop !== "");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = canonicalAddress(stripPort(hops[i]!));
      // A hop that is not an address: nothing to its left can be believed either.
      if (isIP(hop) === 0) return client;
      client = hop;
      if (!isTrusted(hop)) return hop;
    }
    return client;
  };
}

/** `1.2.3.4:80` → `1.2.3.4`, `[2001:db8::1]:443` → `2001:db8::1`; anything else as it is. */
function stripPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1]!;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4WithPort ? v4WithPort[1]! : hop;
}

/**
 * One spelling per address: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports
 * for an IPv4 peer) becomes plain IPv4, IPv6 is lower-cased without a zone. Non-addresses are
 * returned unchanged.
 */
export function canonicalAddress(address: string): string {
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(trimmed);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  const unzoned = trimmed.replace(/%[\w.-]+$/, "");
  return isIP(unzoned) === 6 ? unzoned.toLowerCase() : trimmed;
}

/**
 * The key a client address is rate-limited under. An IPv6 client usually holds a whole /64
 * (and can pick any address in it), so IPv6 addresses count per /64; IPv4 per address.
 */
export function rateLimitSubject(address: string): string {
  const canonical = canonicalAddress(address);
  if (isIP(canonical) !== 6) return canonical.slice(0, 64);
  const groups = expandIpv6(canonical);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : canonical;
}

/** The eight 16-bit groups of an IPv6 address, as lower-case hex without leading zeros. */
function expandIpv6(address: string): string[] | undefined {
  let text = address;
  // A trailing dotted IPv4 part stands for the last two groups.
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail, ...rest] = text.split("::");
  if (rest.length > 0) return undefined;
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  return [...left, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...right].map((group) =>
    Number.parseInt(group, 16).toString(16),
  );
}
