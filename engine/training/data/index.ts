/** The data side of training: sources, encoding, packing, belt windows, curriculum batches, evaluation sets. */
export {
  ARITHMETIC_HELD_OUT_FRACTION,
  arithmeticAnswer,
  arithmeticChat,
  arithmeticProblem,
  arithmeticQuestion,
  heldOutArithmetic,
  isArithmeticHeldOut,
  type ArithmeticOp,
  type ArithmeticOptions,
  type ArithmeticProblem,
} from './arithmetic.ts';
export {
  beltSpan,
  beltWindowCount,
  beltWindows,
  NO_TARGET,
  validateBeltShape,
  writeBeltWindow,
  writeWindowAt,
  type BeltShape,
  type BeltWindow,
} from './belt.ts';
export {
  BROWN_HELD_OUT_FRACTION,
  brownCorpusDir,
  brownDocumentText,
  brownFileIds,
  brownPosCounts,
  detagBrownLine,
  isBrownHeldOut,
  parseBrownFile,
  readBrownCorpus,
  splitBrown,
  type BrownFile,
  type PosCounts,
} from './brown.ts';
export { CHAT_ROLES, type ChatExample, type ChatRole, type ChatTurn } from './chat-example.ts';
export {
  formatChatJsonlErrors,
  MAX_REPORTED_ERRORS,
  validateChatJsonl,
  type ChatJsonlError,
  type ChatJsonlResult,
} from './chat-jsonl.ts';
export {
  DEFAULT_MAX_WORDS,
  DEFAULT_DEFINITION_WORDS,
  loadBuiltinCorpora,
  type BuiltinCorpora,
  type CorporaOptions,
} from './corpora.ts';
export { Curriculum, effectiveMix, formatPlan, type Batch, type CurriculumOptions, type PhaseStreamStats } from './curriculum.ts';
export {
  DEFAULT_TOKENS_PER_STEP,
  DEFAULT_TOTAL_TOKENS,
  defaultRecipe,
  defaultSources,
  loadDefaultSources,
  SOURCE,
  type DefaultRecipeOptions,
  type DefaultSourceOptions,
} from './default-recipe.ts';
export { defaultEncoder } from './default-tokenizer.ts';
export { DocumentEncoder, type TrainingDocument } from './encode.ts';
export { evalBatches, type EvalBatches } from './eval-batches.ts';
export {
  heldOutEvalSets,
  type EvalSets,
  type HeldOutArithmetic,
  type HeldOutDefinition,
  type HeldOutText,
} from './eval-sets.ts';
export { packDocuments, StreamPacker, type PackedStream, type SpecialIds } from './pack.ts';
export {
  GROW_LENGTH_STAGES,
  planRecipe,
  RecipeError,
  recipeFingerprint,
  validateRecipe,
  withFixedShape,
  type GrowStage,
  type PhaseRecipe,
  type PlanSegment,
  type Recipe,
  type RecipePlan,
} from './recipe.ts';
export { arithmeticSource, chatSource, textSource, type DocumentSource, type SourceSet } from './source.ts';
export { isHeldOut, seededPermutation, seededPrng, stableHash } from './stable-hash.ts';
export {
  DataFileError,
  dataFilesRecipe,
  loadDataFiles,
  readDataFile,
  type DataFile,
  type DataFilesRecipeOptions,
} from './user-files.ts';
export { maxSlide, placeWindows, type GrowableStream, type PlacedWindow } from './window-plan.ts';
export {
  buildWordNetChats,
  definitionQuestion,
  isWordHeldOut,
  rankedVocabulary,
  WORDNET_CHAT_KINDS,
  WORDNET_HELD_OUT_FRACTION,
  type ExpectedSense,
  type WordNetChat,
  type WordNetChatKind,
  type WordNetChatSet,
} from './wordnet-chats.ts';
export {
  loadWordNet,
  parseDataLine,
  parseGloss,
  parseIndexLine,
  WORDNET_POS,
  WordNet,
  wordnetDictDir,
  type LemmaEntry,
  type Synset,
  type WordNetPos,
  type WordPointer,
} from './wordnet.ts';
