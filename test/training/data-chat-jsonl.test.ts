import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatChatJsonlErrors, MAX_REPORTED_ERRORS, validateChatJsonl } from '../../engine/training/data/chat-jsonl.ts';
import { defaultEncoder } from '../../engine/training/data/default-tokenizer.ts';
import { DataFileError, dataFilesRecipe, loadDataFiles, readDataFile } from '../../engine/training/data/user-files.ts';

const ok = (content = 'Hi.') => JSON.stringify({ messages: [{ role: 'user', content: 'Hello?' }, { role: 'assistant', content }] });

describe('validateChatJsonl', () => {
  it('accepts valid lines, skips blank ones and keeps system messages and weights', () => {
    const text = [
      ok('One.'),
      '',
      JSON.stringify({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Q' }, { role: 'assistant', content: 'A', weight: 0 }, { role: 'user', content: 'Q2' }, { role: 'assistant', content: 'B' }] }),
      '   ',
    ].join('\r\n');
    const r = validateChatJsonl(text);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.examples).toHaveLength(2);
    expect(r.examples[0]!.messages[1]).toEqual({ role: 'assistant', content: 'One.' });
    expect(r.examples[1]!.messages[2]).toEqual({ role: 'assistant', content: 'A', weight: 0 });
  });

  it('reports every bad line with its 1-based line number', () => {
    const text = [
      ok(), // 1
      '{"messages": [', // 2 bad JSON
      '{"prompt": "x"}', // 3 missing messages
      '{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}', // 4 unknown role
      '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]}', // 5 empty content
      '{"messages": [{"role": "user", "content": "only a question"}]}', // 6 nothing to learn
      '{"messages": []}', // 7
      '[1, 2]', // 8
      '{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y", "weight": 2}]}', // 9
      ok(), // 10
    ].join('\n');
    const r = validateChatJsonl(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    const at = (line: number) => r.errors.find((e) => e.line === line)!.message;
    expect(at(2)).toMatch(/^invalid JSON/);
    expect(at(3)).toBe('missing "messages"');
    expect(at(4)).toBe('messages[0].role must be one of system, user, assistant, got "tool"');
    expect(at(5)).toBe('messages[1].content is empty');
    expect(at(6)).toMatch(/no assistant message/);
    expect(at(7)).toBe('"messages" is empty');
    expect(at(8)).toMatch(/expected an object/);
    expect(at(9)).toBe('messages[0].content must be a string, got number; messages[1].weight must be 0 or 1, got number');
    expect(formatChatJsonlErrors(r.errors).split('\n')[0]).toMatch(/^line 2: invalid JSON/);
  });

  it('a line whose every reply has weight 0 has nothing to train on', () => {
    const context = (w: 0 | 1) => ({ role: 'assistant', content: 'A', weight: w });
    const text = [
      JSON.stringify({ messages: [{ role: 'user', content: 'Q' }, context(0), { role: 'user', content: 'Q2' }, context(1)] }), // 1 fine
      JSON.stringify({ messages: [{ role: 'user', content: 'Q' }, context(0)] }), // 2
      JSON.stringify({ messages: [{ role: 'user', content: 'Q' }, context(0), { role: 'user', content: 'Q2' }, context(0)] }), // 3
    ].join('\n');
    const r = validateChatJsonl(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.line)).toEqual([2, 3]);
    expect(formatChatJsonlErrors(r.errors)).toMatch(/^line 2: no assistant message with weight 1/);
  });

  it('caps the report and flags an empty file', () => {
    const r = validateChatJsonl(Array.from({ length: 80 }, () => 'nope').join('\n'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(MAX_REPORTED_ERRORS + 1);
    expect(r.errors.at(-1)).toEqual({ line: 0, message: '30 more lines have errors' });
    const empty = validateChatJsonl('\n\n');
    expect(empty).toEqual({ ok: false, errors: [{ line: 0, message: 'the file has no examples' }] });
  });
});

describe('user data files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'braid-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads .jsonl as chats and anything else as one text document, with named sources', () => {
    const chats = join(dir, 'chats.jsonl');
    const notes = join(dir, 'notes.txt');
    writeFileSync(chats, `${ok('Yes.')}\n${ok('No.')}\n`);
    writeFileSync(notes, 'Some notes.\n\nMore notes.\n');
    expect(readDataFile(notes)).toEqual({ kind: 'text', path: notes, text: 'Some notes.\n\nMore notes.\n' });
    const { sources, mix } = loadDataFiles([chats, notes, notes], defaultEncoder());
    expect([...sources.keys()]).toEqual(['chats.jsonl', 'notes.txt', 'notes.txt#2']);
    expect(sources.get('chats.jsonl')!.size).toBe(2);
    expect(mix['notes.txt']).toBe(25);
    const recipe = dataFilesRecipe(mix, { totalTokens: 4096, batch: 2, window: 64 });
    expect(recipe.tokensPerStep).toBe(128);
    expect(recipe.phases[0]!.mix).toEqual(mix);
  });

  it('throws a DataFileError carrying the line errors', () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${ok()}\n{"messages": 3}\n`);
    let err: unknown;
    try {
      readDataFile(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataFileError);
    expect((err as DataFileError).errors).toEqual([{ line: 2, message: '"messages" must be an array, got number' }]);
    expect((err as Error).message).toContain('line 2: "messages" must be an array');
    expect(() => readDataFile(join(dir, 'missing.txt'))).toThrow(/cannot read/);
  });
});
