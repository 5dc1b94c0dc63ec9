/**
 * Placeholder entry point of the kailash_nb JupyterLab extension: one plugin that only
 * says it was activated. The sidebar's real source replaces this file.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

/** The plugin's id: `<npm package name>:<plugin>`, as JupyterLab requires. */
export const PLUGIN_ID = 'kailash-nb:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Kailash sidebar: workflows, nodes and runs of the notebook kernel.',
  autoStart: true,
  activate: (app: JupyterFrontEnd): void => {
    console.log(`${PLUGIN_ID} activated in ${app.name}`);
  }
};

export default plugin;
