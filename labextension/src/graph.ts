/**
 * `GraphPanel`: a workflow's graph in the main area, the same static picture the
 * widget's saved output shows, redrawn from the kernel whenever the workflow changes.
 * The SVG is shown as an image, so nothing in it can run in the page.
 */
import { Widget } from '@lumino/widgets';

import { KernelLink } from './link.js';
import { IViewModel } from './reducer.js';

/** Least milliseconds between two redraws while a run streams events. */
const REDRAW_INTERVAL = 250;

/** The graph of one workflow of one notebook's kernel. */
export class GraphPanel extends Widget {
  constructor(link: KernelLink, workflow: string) {
    super();
    this._link = link;
    this.workflow = workflow;
    this.addClass('kn-lab-graph');
    this.node.dataset.workflow = workflow;
    this._image = document.createElement('img');
    this._image.alt = `the graph of workflow ${workflow}`;
    this._status = document.createElement('p');
    this._status.className = 'kn-lab-message';
    this.node.append(this._status, this._image);
    link.changed.connect(this._onChanged, this);
    void this._redraw();
  }

  /** The workflow shown. */
  readonly workflow: string;

  dispose(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    if (this._url) {
      URL.revokeObjectURL(this._url);
    }
    this._link.changed.disconnect(this._onChanged, this);
    super.dispose();
  }

  private _onChanged(_: KernelLink, model: IViewModel): void {
    if (this._timer === null && model.workflows.some(w => w.name === this.workflow)) {
      this._timer = window.setTimeout(() => {
        this._timer = null;
        void this._redraw();
      }, REDRAW_INTERVAL);
    }
  }

  private async _redraw(): Promise<void> {
    try {
      const reply = await this._link.request({ request: 'graph', workflow: this.workflow });
      if (this.isDisposed || reply.svg === undefined) {
        return;
      }
      const url = URL.createObjectURL(new Blob([reply.svg], { type: 'image/svg+xml' }));
      if (this._url) {
        URL.revokeObjectURL(this._url);
      }
      this._url = url;
      this._image.src = url;
      this._status.textContent = '';
    } catch (error) {
      this._status.textContent = `The graph could not be drawn: ${(error as Error).message}`;
    }
  }

  private _link: KernelLink;
  private _image: HTMLImageElement;
  private _status: HTMLElement;
  private _url: string | null = null;
  private _timer: number | null = null;
}
