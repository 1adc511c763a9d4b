// Node-RED settings for `npm start`: loopback only, a userDir inside the repository (.node-red, gitignored).
'use strict';
module.exports = {
  uiHost: '127.0.0.1',
  // The port comes from start.js (--port): 1880 when free.
  flowFile: 'flows.json',
  credentialSecret: 'aliyun-iot-local-demo',
  logging: { console: { level: 'info', metrics: false, audit: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
  // No consent dialog over the demo; nothing leaves the machine.
  telemetry: { enabled: false },
};
