// SPDX-License-Identifier: MIT
// Runs SQL with DuckDB for the auditor-query test: reads one JSON object
// {"setup": [sql, ...], "query": sql, "params": [...]} on stdin, runs the
// setup statements and then the query in the current directory, and
// prints the rows as a JSON array of objects: DuckDB's JSON form of each
// value, except that a top-level integer column stays a number when a
// double holds it exactly (the JSON form turns BIGINTs into strings).
'use strict';

const duckdb = require('@duckdb/node-api');

function plain(value, json) {
    if (typeof value === 'bigint' && Number.isSafeInteger(Number(value)))
        return Number(value);
    return json;
}

async function main() {
    const chunks = [];
    for await (const c of process.stdin)
        chunks.push(c);
    const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const instance = await duckdb.DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    for (const sql of job.setup || [])
        await conn.run(sql);
    const reader = await conn.runAndReadAll(job.query, job.params || []);
    const native = reader.getRowObjectsJS();
    const rows = reader.getRowObjectsJson().map((row, i) => {
        const out = {};
        for (const [k, v] of Object.entries(row))
            out[k] = plain(native[i][k], v);
        return out;
    });
    process.stdout.write(JSON.stringify(rows) + '\n');
}

main().catch((err) => {
    process.stderr.write('duckdb: ' + (err && err.message || err) + '\n');
    process.exit(1);
});
