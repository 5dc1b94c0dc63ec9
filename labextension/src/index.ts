/**
 * The kailash-nb JupyterLab extension: a "Kailash" sidebar for the active notebook's
 * kernel, a graph panel, and `kailash:` commands in the palette. The kernel owns all
 * state (see `link.ts`); without this extension everything still works in plain Lab,
 * VS Code and Colab, through the anywidget graph widget.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { GraphPanel } from './graph.js';
import { KernelLink } from './link.js';
import { cellNumber, currentWorkflow, DEFAULT_MAX_RUNS, IViewModel } from './reducer.js';
import { KailashSidebar } from './sidebar.js';

const PLUGIN_ID = 'kailash-nb:plugin';
const SIDEBAR_ID = 'kailash-nb-sidebar';

/** The palette's commands. */
export namespace CommandIDs {
  export const showGraph = 'kailash:show-graph';
  export const runWorkflow = 'kailash:run-workflow';
  export const runNode = 'kailash:run-node';
  export const goToCell = 'kailash:go-to-cell';
  export const openRunHistory = 'kailash:open-run-history';
}

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><circle cx="5" cy="6" r="2.5"/><circle cx="5" cy="18" r="2.5"/>
<circle cx="19" cy="12" r="2.5"/><path d="M7 7l9.5 4.2-.6 1.3L6.4 8.3zM6.4 15.7l9.5-4.2.6 1.3L7 17z"/></g></svg>`;

/** The sidebar's icon. */
export const kailashIcon = new LabIcon({ name: 'kailash-nb:icon', svgstr: ICON_SVG });

interface ICommandArgs {
  workflow?: string;
  node?: string;
}

function activate(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  restorer: ILayoutRestorer | null,
  palette: ICommandPalette | null,
  settingRegistry: ISettingRegistry | null
): void {
  const links = new Map<NotebookPanel, KernelLink>();
  const graphs = new Map<string, MainAreaWidget<GraphPanel>>();
  let maxRuns = DEFAULT_MAX_RUNS;

  const linkOf = (panel: NotebookPanel): KernelLink => {
    let link = links.get(panel);
    if (!link) {
      const created = new KernelLink(panel.sessionContext, maxRuns);
      links.set(panel, created);
      panel.disposed.connect(() => {
        links.delete(panel);
        created.dispose();
      });
      link = created;
    }
    return link;
  };
  const active = (): { panel: NotebookPanel; link: KernelLink } | null => {
    const panel = tracker.currentWidget;
    return panel ? { panel, link: linkOf(panel) } : null;
  };
  const report = (title: string) => (error: unknown) =>
    void showErrorMessage(title, (error as Error).message ?? String(error));

  const sidebar = new KailashSidebar({
    runWorkflow: workflow => void app.commands.execute(CommandIDs.runWorkflow, { workflow }),
    runNode: (workflow, node) => void app.commands.execute(CommandIDs.runNode, { workflow, node }),
    showGraph: workflow => void app.commands.execute(CommandIDs.showGraph, { workflow }),
    goToCell: (workflow, node) =>
      void app.commands.execute(CommandIDs.goToCell, { workflow, node }),
    previewUrl: (port, path) =>
      URLExt.join(PageConfig.getBaseUrl(), 'kailash-nb/previews', String(port), path)
  });
  sidebar.id = SIDEBAR_ID;
  sidebar.title.icon = kailashIcon;
  sidebar.title.caption = 'Kailash: the workflows of this notebook’s kernel';

  let followed: KernelLink | null = null;
  const show = (_?: unknown, model?: IViewModel) => {
    const current = active();
    sidebar.render(model ?? current?.link.model ?? null, current?.panel.title.label ?? null);
  };
  const follow = () => {
    followed?.changed.disconnect(show);
    const current = active();
    followed = current?.link ?? null;
    followed?.changed.connect(show);
    show();
  };
  tracker.widgetAdded.connect((_, panel) => linkOf(panel));
  tracker.currentChanged.connect(follow);
  follow();

  app.shell.add(sidebar, 'left', { rank: 650 });
  restorer?.add(sidebar, SIDEBAR_ID);

  /** The workflow and node a command acts on: its arguments, else the sidebar's selection, else the kernel's current workflow. */
  const target = (args: ICommandArgs): { workflow?: string; node?: string } => {
    const selection = sidebar.selection;
    const model = active()?.link.model;
    const workflow = args.workflow ?? selection?.workflow ?? (model && currentWorkflow(model)?.name);
    const node = args.node ?? (selection?.workflow === workflow ? selection?.node : undefined);
    return { workflow, node };
  };
  const connected = () => active()?.link.model.connection === 'connected';

  /** Asks the kernel to run a workflow, or a node and what it needs. */
  const requestRun = (args: ICommandArgs, withNode: boolean) => {
    const current = active();
    const { workflow, node } = target(args);
    if (!current || !workflow || (withNode && !node)) {
      return;
    }
    return current.link
      .request({ request: 'run', workflow, node: withNode ? (node ?? null) : null })
      .catch(report(`Could not run ${withNode ? node : workflow}`));
  };
  app.commands.addCommand(CommandIDs.runWorkflow, {
    label: args => `Run Workflow${args.workflow ? ` ${args.workflow}` : ''}`,
    caption: 'Run a workflow of the notebook’s kernel (only what changed executes)',
    isEnabled: connected,
    execute: args => requestRun(args as ICommandArgs, false)
  });
  app.commands.addCommand(CommandIDs.runNode, {
    label: args => `Run Node${args.node ? ` ${args.node}` : ''}`,
    caption: 'Run the selected node and the nodes it needs',
    isEnabled: () => connected() && target({}).node !== undefined,
    execute: args => requestRun(args as ICommandArgs, true)
  });
  app.commands.addCommand(CommandIDs.showGraph, {
    label: args => `Show Graph${args.workflow ? ` of ${args.workflow}` : ''}`,
    caption: 'Show a workflow’s graph in the main area, following its runs',
    isEnabled: connected,
    execute: args => {
      const current = active();
      const { workflow } = target(args as ICommandArgs);
      if (!current || !workflow) {
        return;
      }
      const key = `${current.panel.id}:${workflow}`;
      let widget = graphs.get(key);
      if (!widget || widget.isDisposed) {
        const content = new GraphPanel(current.link, workflow);
        widget = new MainAreaWidget({ content });
        widget.id = `kailash-nb-graph-${graphs.size}`;
        widget.title.label = `Graph: ${workflow}`;
        widget.title.icon = kailashIcon;
        widget.title.closable = true;
        graphs.set(key, widget);
        current.panel.disposed.connect(() => widget?.dispose());
        app.shell.add(widget, 'main', { mode: 'split-right' });
      }
      app.shell.activateById(widget.id);
    }
  });
  app.commands.addCommand(CommandIDs.goToCell, {
    label: 'Go to the Cell That Defines the Node',
    caption: 'Select and scroll to the notebook cell that defined the selected node',
    isEnabled: () => connected() && target({}).node !== undefined,
    execute: async args => {
      const current = active();
      const { workflow, node } = target(args as ICommandArgs);
      const model = current?.link.model;
      const found = model?.workflows
        .find(w => w.name === workflow)
        ?.nodes.find(n => n.id === node);
      if (!current || !found) {
        return;
      }
      const number = cellNumber(found.cell);
      const notebook = current.panel.content;
      const index = notebook.widgets.findIndex(
        cell =>
          cell.model.type === 'code' && (cell.model as ICodeCellModel).executionCount === number
      );
      if (number === null || index < 0) {
        await showErrorMessage(
          'Cell not found',
          `${node} was defined in ${found.cell ?? 'an unknown place'}, which is not a cell of this notebook.`
        );
        return;
      }
      app.shell.activateById(current.panel.id);
      notebook.activeCellIndex = index;
      notebook.mode = 'command';
      await notebook.scrollToCell(notebook.widgets[index], 'center');
    }
  });
  app.commands.addCommand(CommandIDs.openRunHistory, {
    label: 'Open Run History',
    caption: 'Show the last runs of the notebook’s kernel in the Kailash sidebar',
    execute: () => {
      app.shell.activateById(SIDEBAR_ID);
      sidebar.revealRuns();
    }
  });
  for (const command of Object.values(CommandIDs)) {
    palette?.addItem({ command, category: 'Kailash' });
  }

  if (settingRegistry) {
    void settingRegistry
      .load(PLUGIN_ID)
      .then(settings => {
        const apply = () => {
          maxRuns = settings.get('maxRuns').composite as number;
          for (const link of links.values()) {
            link.setMaxRuns(maxRuns);
          }
        };
        apply();
        settings.changed.connect(apply);
      })
      .catch(error => console.error('kailash-nb: could not load the settings', error));
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Kailash sidebar: the workflows, runs and previews of a notebook’s kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry],
  activate
};

export default plugin;
