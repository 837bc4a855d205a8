/**
 * /v1/files in OpenAI's shape: upload (multipart, purpose "fine-tune"), list,
 * retrieve, content, delete. Uploads are chat JSONL, validated before they
 * are stored; a bad file is a 400 naming every bad line (up to 50). The body
 * limit of the whole server (--max-body-bytes) bounds an upload.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { FILE_PURPOSES, FileValidationError, type FilePurpose, type StoredFile } from '../../engine/finetune/file-store.ts';
import { pageAfter } from '../../engine/finetune/page.ts';
import type { FineTuning } from '../../engine/finetune/service.ts';
import { ApiError, fromZodError, invalidRequest } from '../errors.ts';
import type { AppEnv } from '../types.ts';

export function fileObject(f: StoredFile) {
  return {
    id: f.id,
    object: 'file' as const,
    bytes: f.bytes,
    created_at: f.created_at,
    filename: f.filename,
    purpose: f.purpose,
    status: f.status,
    status_details: null,
    expires_at: null,
    braid: { examples: f.examples },
  };
}

export const fileNotFound = (id: string, param = 'file_id'): ApiError =>
  new ApiError(404, `No such File object: ${id}`, 'invalid_request_error', param, 'file_not_found');

const listQuery = z.object({
  purpose: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  order: z.enum(['asc', 'desc']).default('desc'),
  after: z.string().optional(),
});

/** Query parameters through zod, errors rendered like body errors. */
export function readQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const parsed = schema.safeParse(c.req.query(), { reportInput: true });
  if (!parsed.success) throw fromZodError(parsed.error);
  return parsed.data;
}

async function readUpload(c: Context): Promise<{ file: File; purpose: FilePurpose }> {
  const type = c.req.header('content-type') ?? '';
  if (!type.toLowerCase().startsWith('multipart/form-data')) {
    throw invalidRequest("Uploads are multipart/form-data with the fields 'file' and 'purpose'.", null, 'invalid_content_type');
  }
  let form: Record<string, string | File | (string | File)[]>;
  try {
    form = await c.req.parseBody({ all: true });
  } catch (err) {
    throw invalidRequest(`The multipart body could not be parsed: ${err instanceof Error ? err.message : String(err)}`, null, 'invalid_multipart');
  }
  const purpose = form.purpose;
  if (purpose === undefined) throw invalidRequest("Missing required parameter: 'purpose'.", 'purpose', 'missing_required_parameter');
  if (typeof purpose !== 'string' || !(FILE_PURPOSES as readonly string[]).includes(purpose)) {
    throw invalidRequest(`Invalid 'purpose': this server stores files for ${FILE_PURPOSES.map((p) => `'${p}'`).join(', ')} only.`, 'purpose', 'invalid_value');
  }
  const file = form.file;
  if (file === undefined) throw invalidRequest("Missing required parameter: 'file'.", 'file', 'missing_required_parameter');
  if (!(file instanceof File)) throw invalidRequest("Invalid 'file': expected one uploaded file.", 'file', 'invalid_value');
  return { file, purpose: purpose as FilePurpose };
}

export function fileRoutes(ft: FineTuning): Hono<AppEnv> {
  const found = (id: string): StoredFile => {
    const f = ft.files.get(id);
    if (f === undefined) throw fileNotFound(id);
    return f;
  };
  return new Hono<AppEnv>()
    .post('/v1/files', async (c) => {
      const { file, purpose } = await readUpload(c);
      const name = (file.name || 'upload.jsonl').slice(0, 255);
      try {
        return c.json(fileObject(await ft.files.create(name, new Uint8Array(await file.arrayBuffer()), purpose)));
      } catch (err) {
        if (err instanceof FileValidationError) throw invalidRequest(err.message, 'file', 'invalid_file_format');
        throw err;
      }
    })
    .get('/v1/files', (c) => {
      const q = readQuery(c, listQuery);
      let items = ft.files.list().filter((f) => q.purpose === undefined || f.purpose === q.purpose);
      if (q.order === 'asc') items = items.reverse();
      const page = pageAfter(items, q.after, q.limit);
      return c.json({
        object: 'list',
        data: page.data.map(fileObject),
        has_more: page.has_more,
        first_id: page.data[0]?.id ?? null,
        last_id: page.data.at(-1)?.id ?? null,
      });
    })
    .get('/v1/files/:id', (c) => c.json(fileObject(found(c.req.param('id')))))
    .get('/v1/files/:id/content', async (c) => {
      const f = found(c.req.param('id'));
      const bytes = await ft.files.content(f.id);
      return c.body(new Uint8Array(bytes), 200, { 'content-type': 'application/octet-stream' });
    })
    .delete('/v1/files/:id', async (c) => {
      const id = c.req.param('id');
      const r = await ft.deleteFile(id);
      if (!r.ok && r.reason === 'not_found') throw fileNotFound(id);
      if (!r.ok && r.reason === 'in_use') {
        throw new ApiError(409, `The file ${id} is used by the unfinished fine-tuning job ${r.job}; cancel the job or wait for it to finish.`, 'invalid_request_error', 'file_id', 'file_in_use');
      }
      return c.json({ id, object: 'file' as const, deleted: true });
    });
}
