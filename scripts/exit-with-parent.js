// Preloaded into the Node-RED that `npm start` runs: when the starting script's IPC channel closes (the script ended,
// even by SIGKILL), Node-RED stops as on Ctrl-C, so that no orphan keeps the editor's port.
'use strict';
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
