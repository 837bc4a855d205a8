import { describe, expect, it } from 'vitest';
import {
  BROWN_HELD_OUT_FRACTION,
  brownDocumentText,
  brownFileIds,
  brownPosCounts,
  detagBrownLine,
  isBrownHeldOut,
  parseBrownFile,
  readBrownCorpus,
  splitBrown,
} from '../../engine/training/data/brown.ts';

/** The start of ca01 as shipped, plus a headline and a doubled mark. */
const SAMPLE =
  '\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in ' +
  "Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti " +
  'irregularities/nns took/vbd place/nn ./.\n\n\n' +
  "\t``/`` Only/rb a/at relative/jj handful/nn of/in such/jj reports/nns was/bedz received/vbn ''/'' ,/, the/at jury/nn said/vbd ./.\n" +
  "It/pps urged/vbd that/cs the/at city/nn ``/`` take/vb steps/nns ''/'' (/( now/rb )/) ;/. ;/.\n\n\n" +
  'Merger/nn-hl proposed/vbn-hl \n' +
  'However/wrb ,/, the/at jury/nn said/vbd it/pps believes/vbz Ivan/np Allen/np Jr./np ./.\n';

describe('Brown corpus reader', () => {
  it('strips POS tags and fixes tokenization spacing and quotes', () => {
    expect(detagBrownLine("\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, ok/uh ./.")).toBe('The jury said "no", ok.');
    expect(detagBrownLine('a/at 1/2/cd cup/nn (/( `/` x/nn \'/\' )/) $/$ 5/cd %/%')).toBe("a 1/2 cup ('x') $5%");
  });

  it('groups sentences into paragraphs (tab = new paragraph, headlines alone) and tidies doubled marks', () => {
    const f = parseBrownFile('ca01', SAMPLE);
    expect(f.paragraphs).toEqual([
      ['The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.'],
      ['"Only a relative handful of such reports was received", the jury said.', 'It urged that the city "take steps" (now);;'],
      ['Merger proposed'],
      ['However, the jury said it believes Ivan Allen Jr..'],
    ]);
    const text = brownDocumentText(f);
    expect(text).toContain('"take steps" (now);\n\nMerger proposed\n\nHowever, the jury said it believes Ivan Allen Jr.\n');
    expect(text).not.toMatch(/\/[a-z]/); // no tag survives
    expect(text).not.toMatch(/ [,.;:!?]/);
  });

  it('counts open-class parts of speech, leaving closed classes and proper nouns out', () => {
    const c = brownPosCounts([parseBrownFile('ca01', SAMPLE)]);
    expect(c.get('jury')).toEqual({ noun: 3, verb: 0, adjective: 0, adverb: 0 }); // "Jury/nn-tl" counts too
    expect(c.get('said')?.verb).toBe(3);
    expect(c.get('recent')?.adjective).toBe(1);
    expect(c.has('the')).toBe(false);
    expect(c.has('fulton')).toBe(false);
  });

  it('holds out about 5 % of the files, disjoint from train and the same on every call', () => {
    const ids = brownFileIds();
    expect(ids).toHaveLength(500);
    const held = ids.filter(isBrownHeldOut);
    expect(held.length).toBeGreaterThan(500 * BROWN_HELD_OUT_FRACTION * 0.5);
    expect(held.length).toBeLessThan(500 * BROWN_HELD_OUT_FRACTION * 1.6);
    // Pinned: a change here silently moves evaluation text into training.
    expect(held.slice(0, 5)).toEqual(['ca02', 'cb04', 'cc04', 'cd05', 'cd13']);
    const files = readBrownCorpus(undefined, ['ca01', 'ca02', 'cb04', 'cb05']);
    const { train, heldOut } = splitBrown(files);
    expect(heldOut.map((f) => f.id)).toEqual(['ca02', 'cb04']);
    expect(train.map((f) => f.id)).toEqual(['ca01', 'cb05']);
    expect(train[0]!.paragraphs[0]![0]).toMatch(/^The Fulton County Grand Jury said Friday/);
  });
});
