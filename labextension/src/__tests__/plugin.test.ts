/// <reference types="node" />
import assert from 'node:assert/strict';
import { test } from 'node:test';

import plugin, { PLUGIN_ID } from '../index.js';

test('the plugin id is the npm package name, so Lab finds it under kailash-nb', () => {
  assert.equal(plugin.id, PLUGIN_ID);
  assert.equal(PLUGIN_ID.split(':')[0], 'kailash-nb');
});

test('the plugin starts with JupyterLab', () => {
  assert.equal(plugin.autoStart, true);
});
