/**
 * Held-out evaluation sets: text and questions that no training batch
 * contains. Brown files, WordNet words and arithmetic operand pairs are held
 * out by stable hashes (brown.ts, wordnet-chats.ts, arithmetic.ts), so the
 * sets are the same in every run and every process.
 */
import { arithmeticAnswer, arithmeticQuestion, heldOutArithmetic, type ArithmeticOptions, type ArithmeticProblem } from './arithmetic.ts';
import { brownDocumentText } from './brown.ts';
import type { ChatExample } from './chat-example.ts';
import type { BuiltinCorpora } from './corpora.ts';
import { definitionQuestion, type ExpectedSense } from './wordnet-chats.ts';

export interface HeldOutText {
  /** Brown file id. */
  id: string;
  text: string;
}

export interface HeldOutDefinition {
  word: string;
  /** "What does <word> mean?" */
  question: string;
  /** The glosses a correct answer gives, leading part of speech first. */
  expected: ExpectedSense[];
  /** The full reference answer, as training phrases definitions. */
  answer: string;
  /** question → answer as a chat, for held-out loss. */
  example: ChatExample;
}

export interface HeldOutArithmetic {
  problem: ArithmeticProblem;
  /** "What is 17 + 25?" */
  question: string;
  /** "17 + 25 = 42." */
  answer: string;
  example: ChatExample;
}

export interface EvalSets {
  brown: HeldOutText[];
  definitions: HeldOutDefinition[];
  arithmetic: HeldOutArithmetic[];
}

function qa(question: string, answer: string): ChatExample {
  return {
    messages: [
      { role: 'user', content: question },
      { role: 'assistant', content: answer },
    ],
  };
}

export function heldOutEvalSets(corpora: BuiltinCorpora, opts: { arithmetic?: ArithmeticOptions } = {}): EvalSets {
  const brown = corpora.brown.heldOut.map((f) => ({ id: f.id, text: brownDocumentText(f) }));
  const definitions: HeldOutDefinition[] = [];
  const asked = new Set<string>(); // a word has a definition chat per phrasing; ask it once
  for (const ch of corpora.wordnetChats.heldOut) {
    if (ch.kind !== 'definition' || ch.expected === undefined || asked.has(ch.word)) continue;
    asked.add(ch.word);
    const question = definitionQuestion(ch.word);
    const answer = ch.example.messages[ch.example.messages.length - 1]!.content;
    definitions.push({ word: ch.word, question, expected: ch.expected, answer, example: qa(question, answer) });
  }
  const arithmetic = heldOutArithmetic(opts.arithmetic).map((problem) => {
    const question = arithmeticQuestion(problem);
    const answer = arithmeticAnswer(problem);
    return { problem, question, answer, example: qa(question, answer) };
  });
  return { brown, definitions, arithmetic };
}
