/**
 * The README's path, as a user runs it: `node bin/braid.js serve` (what
 * `npm start` runs) in a child process, then the official SDK against it, then
 * SIGTERM → a clean exit.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../server/config.ts';

let child: ChildProcessWithoutNullStreams;
let baseURL = '';
let stderr = '';

beforeAll(async () => {
  child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin/braid.js'), 'serve', '--port', '0', '--threads', '1'], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, BRAID_API_KEY: '' },
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  baseURL = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`braid serve exited early (${code}): ${stderr}`)));
  });
});

afterAll(() => {
  if (child.exitCode === null) child.kill('SIGKILL');
});

describe('braid serve (child process)', () => {
  it('answers the official SDK, streaming and not, and exits cleanly on SIGTERM', async () => {
    const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'unused', maxRetries: 0 });
    const [model] = (await client.models.list()).data;
    expect(model?.id).toBe('chimera-tiny');
    const messages = [{ role: 'user' as const, content: 'Hello there' }];

    const plain = await client.chat.completions.create({ model: model!.id, messages, max_tokens: 8, temperature: 0 });
    expect(plain.object).toBe('chat.completion');
    expect(plain.usage!.completion_tokens).toBeGreaterThan(0);
    expect(plain.usage!.completion_tokens).toBeLessThanOrEqual(8);

    const stream = await client.chat.completions.create({
      model: model!.id,
      messages,
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    // Greedy: the stream carries exactly the text of the non-streamed answer.
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(finish).toBe(plain.choices[0]!.finish_reason);

    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
