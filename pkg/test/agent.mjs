// A line-protocol agent around the package's ApolloClient, the same in every runtime: it is
// what a conformance runner drives through `subject.mjs`. One JSON object per line each way.
//
// Commands (`id` is echoed in the reply):
//   {"id":1,"op":"create","options":{...}}        -> {"id":1,"ok":true} | {"id":1,"ok":false,"error":{...}}
//   {"id":2,"op":"get","key":"k","namespace":"ns"}  -> {"id":2,"ok":true,"value":"v"|null}   (namespace optional)
//   {"id":3,"op":"snapshot"}                        -> {"id":3,"ok":true,"namespaces":{ns:{properties,content,releaseKey,source,status}}}
//   {"id":4,"op":"listen","interest":{"keys":[],"prefixes":[],"namespace":"ns"}} -> {"id":4,"ok":true,"listener":1}
//   {"id":7,"op":"refresh","maxAgeMs":0}           -> {"id":7,"ok":true,"queued":1}        (edge mode)
//   {"id":5,"op":"metrics"}                         -> {"id":5,"ok":true,"metrics":{...}}
//   {"id":6,"op":"close"}                           -> {"id":6,"ok":true}
// Events, unsolicited:
//   {"event":"change","listener":1,"namespace":..,"releaseKey":..,"source":..,"changes":[{key,oldValue,newValue,type}]}
//   {"event":"error","code":..,"message":..,"namespace":..}
// Errors: {"name":"TypeError"|"ApolloError"|..., "code": "...", "message": "..."}.

function describe(e) {
  return { name: e?.name ?? 'Error', code: e?.code ?? null, message: String(e?.message ?? e) };
}

export function createAgent({ ApolloClient, emit }) {
  let client = null;
  let listeners = 0;
  const send = (obj) => emit(JSON.stringify(obj));
  const ops = {
    async create({ options }) {
      if (client) throw new Error('already created');
      client = await ApolloClient.create(options);
      client.on('error', (e) => send({ event: 'error', code: e.code, message: e.message, namespace: e.namespace ?? null }));
      return {};
    },
    get({ key, namespace }) {
      const v = namespace === undefined ? client.get(key) : client.namespace(namespace).get(key);
      return { value: v ?? null };
    },
    snapshot() {
      const namespaces = {};
      for (const n of client.namespaces) {
        const v = client.namespace(n);
        namespaces[n] = { properties: v.toObject(), content: v.content ?? null, releaseKey: v.releaseKey ?? null, source: v.source, status: v.status };
      }
      return { namespaces };
    },
    listen({ interest }) {
      const listener = ++listeners;
      client.on('change', (ev) => send({ event: 'change', listener, ...ev }), interest);
      return { listener };
    },
    async refresh({ maxAgeMs }) {
      return { queued: await client.refresh({ maxAgeMs }) };
    },
    metrics() {
      const m = client.metrics();
      return { metrics: { ...m, lastError: m.lastError ? describe(m.lastError) : null } };
    },
    async close() {
      await client?.close();
      return {};
    },
  };
  return async function handle(line) {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      send({ id: null, ok: false, error: describe(e) });
      return;
    }
    const op = ops[cmd.op];
    try {
      if (!op) throw new Error(`unknown op ${cmd.op}`);
      if (cmd.op !== 'create' && !client) throw new Error('create first');
      send({ id: cmd.id ?? null, ok: true, ...(await op(cmd)) });
    } catch (e) {
      send({ id: cmd.id ?? null, ok: false, error: describe(e) });
    }
  };
}
