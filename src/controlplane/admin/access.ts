/**
 * The admin-access allowlist: compiled into the same trie the data plane uses, checked on every
 * admin request before authentication. An empty list means no restriction.
 */
import { FAMILY_INVALID, parseClientIp } from '../../policy/ip-address.js';
import { parseIpEntry } from '../../policy/ip-entry.js';
import { IpTrie, IpTrieBuilder, NO_ENTRY } from '../../policy/ip-trie.js';

export class AccessList {
  private readonly trie: IpTrie | null;
  private readonly words = new Uint32Array(4);

  constructor(readonly ipList: readonly string[]) {
    if (ipList.length === 0) {
      this.trie = null;
      return;
    }
    const b = new IpTrieBuilder();
    ipList.forEach((text, id) => {
      const r = parseIpEntry(text);
      // Entries were validated at the boundary; a bad one here is a corrupt store.
      if (!r.ok) throw new Error(`admin access list entry ${JSON.stringify(text)}: ${r.error}`);
      for (const prefix of r.prefixes) b.add(prefix, 0, id);
    });
    this.trie = b.build();
  }

  /** Does this list let `address` in? An unparseable address never gets in (fail closed). */
  allows(address: string | null): boolean {
    if (this.trie === null) return true;
    if (address === null) return false;
    const fam = parseClientIp(address, this.words);
    if (fam === FAMILY_INVALID) return false;
    return this.trie.allowEntry[this.trie.lookup(fam, this.words)] !== NO_ENTRY;
  }
}
