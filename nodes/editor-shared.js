// Editor code the nodes' dialogs share. An editor file is a script of its own, without modules: the build writes
// this object into each one in place of ALIYUN_IOT_EDITOR_SHARED.
({
  /** Shows the row `rowSelector` (the sub-device picker) only while the chosen connection is an IoT Platform one. */
  showForIotConnection: function (rowSelector) {
    var row = $(rowSelector);
    function refresh() {
      var connection = RED.nodes.node($('#node-input-connection').val());
      row.toggle(!!connection && (connection.mode || 'iot') === 'iot');
    }
    $('#node-input-connection').on('change', refresh);
    refresh();
  },
});
