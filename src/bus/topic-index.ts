// Subscriptions by AMQP topic pattern, found by walking a trie of pattern words (as RabbitMQ's topic exchange does)
// instead of testing every pattern: the presence service follows one pattern per watched presentity, so a node may
// hold tens of thousands, and every delivered event is matched against all of them.
//
// `*` matches exactly one word, `#` zero or more; the result equals testing each pattern with topicMatches
// (test/bus/topic-index.test.ts checks that on random patterns and topics).

interface TrieNode<T> {
  words: Map<string, TrieNode<T>> | null;
  star: TrieNode<T> | null;
  hash: TrieNode<T> | null;
  /** Values whose pattern ends here. */
  values: T[] | null;
}

function node<T>(): TrieNode<T> {
  return { words: null, star: null, hash: null, values: null };
}

export class TopicIndex<T> {
  private readonly root: TrieNode<T> = node();
  private count = 0;
  /** Entries whose pattern holds a `#`: only through one can a match reach the same end twice. */
  private hashes = 0;

  get size(): number {
    return this.count;
  }

  add(pattern: string, value: T): void {
    let n = this.root;
    for (const w of pattern.split('.')) {
      if (w === '*') n = n.star ??= node();
      else if (w === '#') n = n.hash ??= node();
      else {
        n.words ??= new Map();
        let next = n.words.get(w);
        if (!next) n.words.set(w, (next = node()));
        n = next;
      }
    }
    (n.values ??= []).push(value);
    this.count++;
    if (pattern.includes('#')) this.hashes++;
  }

  /** Removes one entry of `value` under `pattern`; false when there is none. Emptied branches are pruned. */
  remove(pattern: string, value: T): boolean {
    const path: Array<[TrieNode<T>, string]> = [];
    let n: TrieNode<T> | null | undefined = this.root;
    for (const w of pattern.split('.')) {
      path.push([n, w]);
      n = w === '*' ? n.star : w === '#' ? n.hash : n.words?.get(w);
      if (!n) return false;
    }
    const i = n.values ? n.values.indexOf(value) : -1;
    if (i < 0) return false;
    n.values!.splice(i, 1);
    if (n.values!.length === 0) n.values = null;
    this.count--;
    if (pattern.includes('#')) this.hashes--;
    for (let k = path.length - 1; k >= 0 && empty(n); k--) {
      const [parent, w] = path[k];
      if (w === '*') parent.star = null;
      else if (w === '#') parent.hash = null;
      else {
        parent.words!.delete(w);
        if (parent.words!.size === 0) parent.words = null;
      }
      n = parent;
    }
    return true;
  }

  /** Every value whose pattern matches `topic`, each once, in no particular order. */
  match(topic: string): T[] {
    const out: T[] = [];
    if (this.count === 0) return out;
    // Every publication is matched here (a REGISTER's binding event among them): no set to allocate without `#`.
    walk(this.root, topic.split('.'), 0, out, this.hashes > 0 ? new Set() : null);
    return out;
  }
}

function empty<T>(n: TrieNode<T>): boolean {
  return n.values === null && n.words === null && n.star === null && n.hash === null;
}

/** Collects the values of every pattern end reachable with words[i..]; `seen` keeps a `#` path from adding twice. */
function walk<T>(n: TrieNode<T>, words: string[], i: number, out: T[], seen: Set<TrieNode<T>> | null): void {
  if (n.hash) {
    // `#` takes zero or more words: try the rest of the pattern after each possible split.
    for (let k = i; k <= words.length; k++) walk(n.hash, words, k, out, seen);
  }
  if (i === words.length) {
    if (n.values && !seen?.has(n)) {
      seen?.add(n);
      for (const v of n.values) out.push(v);
    }
    return;
  }
  const next = n.words?.get(words[i]);
  if (next) walk(next, words, i + 1, out, seen);
  if (n.star) walk(n.star, words, i + 1, out, seen);
}
