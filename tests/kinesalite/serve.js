// SPDX-License-Identifier: MIT
// Runs kinesalite (in memory) on 127.0.0.1 only; the port is the first
// argument, 0 or none for a free one.  Prints "listening 127.0.0.1 PORT"
// once it accepts calls, like the Firehose receiver does.
'use strict';

const kinesalite = require('kinesalite');

const server = kinesalite({
    createStreamMs: 0,
    deleteStreamMs: 0,
    updateStreamMs: 0,
});
const port = Number(process.argv[2] || 0);

server.listen(port, '127.0.0.1', () => {
    console.log('listening 127.0.0.1 ' + server.address().port);
});
