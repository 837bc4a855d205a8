import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../engine/generation/stop-matcher.ts';

/** Feeds pieces one by one; returns everything released and whether it stopped. */
function run(stops: string[], pieces: string[]): { out: string; stopped: boolean; releases: string[] } {
  const m = new StopMatcher(stops);
  const releases: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    releases.push(r.text);
    if (r.stopped) return { out: releases.join(''), stopped: true, releases };
  }
  releases.push(m.flush());
  return { out: releases.join(''), stopped: false, releases };
}

describe('StopMatcher', () => {
  it('passes text through when there are no stops', () => {
    const r = run([], ['Hello', ', ', 'world']);
    expect(r.out).toBe('Hello, world');
    expect(r.releases.slice(0, 3)).toEqual(['Hello', ', ', 'world']);
    expect(r.stopped).toBe(false);
  });

  it('stops inside a single piece and drops the stop and what follows', () => {
    const r = run(['END'], ['abcENDdef']);
    expect(r).toMatchObject({ out: 'abc', stopped: true });
  });

  it('catches a stop spanning several pieces and never releases part of it', () => {
    const r = run(['<|end|>'], ['Hi <', '|e', 'nd', '|>', 'more']);
    expect(r.stopped).toBe(true);
    expect(r.out).toBe('Hi ');
    // No release ever contained any character of the stop.
    expect(r.releases.join('')).not.toContain('<');
  });

  it('holds back a possible prefix and releases it when it turns out not to be a stop', () => {
    const m = new StopMatcher(['\n\n']);
    expect(m.push('line\n')).toEqual({ text: 'line', stopped: false });
    expect(m.push('next')).toEqual({ text: '\nnext', stopped: false });
    expect(m.push('\n')).toEqual({ text: '', stopped: false });
    expect(m.flush()).toBe('\n');
  });

  it('picks the earliest of several stops', () => {
    expect(run(['xyz', 'b'], ['axyzb'])).toMatchObject({ out: 'a', stopped: true });
    expect(run(['cd', 'abcdef'], ['ab', 'cdxx'])).toMatchObject({ out: 'ab', stopped: true });
  });

  it('handles overlapping prefixes (stop "aab" after "aaa")', () => {
    expect(run(['aab'], ['a', 'a', 'a', 'b', 'c'])).toMatchObject({ out: 'a', stopped: true });
  });

  it('ignores empty stop strings', () => {
    expect(run([''], ['abc'])).toMatchObject({ out: 'abc', stopped: false });
  });

  it('releases nothing more once stopped', () => {
    const m = new StopMatcher(['!']);
    expect(m.push('hi!there')).toEqual({ text: 'hi', stopped: true });
    expect(m.push('more')).toEqual({ text: '', stopped: true });
    expect(m.flush()).toBe('');
  });
});
