/**
 * `KernelLink`: the sidebar's line to one notebook's kernel. It probes the kernel for
 * kailash_nb (a silent `user_expressions` check, no cell count used), opens the
 * `kailash_nb.lab` comm when it is there, folds every message into its view model and
 * sends the extension's requests. Nothing is stored anywhere but in the kernel: a
 * reload, a restart or another kernel simply starts from a fresh snapshot.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage as Messages } from '@jupyterlab/services';
import { PromiseDelegate, UUID } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { COMM_TARGET, KERNEL_MODULE, KernelMessage, IReplyMessage, Request } from './protocol.js';
import { Connection, initialModel, IViewModel, reduce } from './reducer.js';

const PROBE = `__import__('sys').modules.get('${KERNEL_MODULE}') is not None`;

/**
 * Milliseconds a probe waits for the kernel. A reply that never comes (a kernel that
 * restarted, a message lost on the way) must not keep the link from probing again.
 */
const PROBE_TIMEOUT = 10_000;
/** Probes in a row that may fail (no answer, an error) before waiting for the next cell. */
const MAX_RETRIES = 3;

/** The reply of `future`, or a rejection after `timeout` ms (the future is disposed). */
async function answerWithin<T extends Messages.IShellControlMessage>(
  future: Kernel.IFuture<Messages.IShellControlMessage, T>,
  timeout: number
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      future.dispose();
      reject(new Error(`the kernel did not answer within ${timeout / 1000} s`));
    }, timeout);
  });
  try {
    return (await Promise.race([future.done, expired])) as T;
  } finally {
    clearTimeout(timer);
  }
}

/** A request the kernel refused, with the kernel's reason. */
export class KernelRequestError extends Error {}

/** The link between the sidebar and the kernel of one notebook. */
export class KernelLink implements IDisposable {
  /**
   * @param sessionContext the notebook's session; the link follows its kernel changes.
   * @param maxRuns how many runs the model keeps.
   */
  constructor(sessionContext: ISessionContext, maxRuns: number) {
    this._sessionContext = sessionContext;
    this._model = initialModel(maxRuns);
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatusChanged, this);
    sessionContext.iopubMessage.connect(this._onIopub, this);
    void sessionContext.ready.then(() => this.probe());
  }

  /** The current view model. */
  get model(): IViewModel {
    return this._model;
  }

  /** Emitted after every change of the model. */
  get changed(): ISignal<this, IViewModel> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Sets how many runs the model keeps. */
  setMaxRuns(maxRuns: number): void {
    this._dispatch({ type: 'max-runs', maxRuns });
  }

  /**
   * Opens the comm if the kernel has kailash_nb loaded; a no-op while linked. Asked
   * while a probe is in flight, it probes once more after that one.
   */
  async probe(): Promise<void> {
    const kernel = this._sessionContext.session?.kernel;
    if (!kernel || this._comm || this._isDisposed) {
      if (!kernel) {
        this._setConnection('no-kernel');
      }
      return;
    }
    if (this._probing) {
      // The probe in flight may be of a kernel that was just replaced: ask again after it.
      this._probeAgain = true;
      return;
    }
    this._probing = true;
    try {
      const subshellId = await this._probeSubshell(kernel);
      const message = Messages.createMessage({
        msgType: 'execute_request',
        channel: 'shell',
        session: kernel.clientId,
        username: kernel.username,
        subshellId,
        content: {
          code: '',
          silent: true,
          store_history: false,
          user_expressions: { kailash_nb: PROBE },
          allow_stdin: false,
          stop_on_error: false
        }
      });
      const reply = (await answerWithin(
        kernel.sendShellMessage(message, true, true),
        PROBE_TIMEOUT
      )) as Messages.IExecuteReplyMsg;
      const content = reply.content as Messages.IExecuteReplyMsg['content'] & {
        user_expressions?: Record<string, { status: string; data?: { 'text/plain'?: string } }>;
      };
      const answer = content.user_expressions?.kailash_nb;
      const loaded = answer?.status === 'ok' && answer.data?.['text/plain'] === 'True';
      if (kernel !== this._sessionContext.session?.kernel || this._isDisposed) {
        return;
      }
      this._retries = 0;
      if (loaded) {
        this._open(kernel);
      } else {
        this._setConnection('not-loaded');
      }
    } catch (error) {
      // A kernel that dies or restarts mid-probe: the status change probes again. One
      // that stays silent is asked again a few times.
      console.warn('kailash-nb: could not probe the kernel', error);
      if (kernel === this._sessionContext.session?.kernel && this._retries < MAX_RETRIES) {
        this._retries++;
        this._probeAgain = true;
      }
    } finally {
      this._probing = false;
      if (this._probeAgain) {
        this._probeAgain = false;
        void this.probe();
      }
    }
  }

  /**
   * Sends `request` and resolves with the kernel's reply.
   *
   * @throws KernelRequestError when the kernel refuses it or the link is down.
   */
  request(request: Request): Promise<IReplyMessage> {
    if (!this._comm || this._comm.isDisposed) {
      return Promise.reject(
        new KernelRequestError('kailash_nb is not loaded in this notebook’s kernel')
      );
    }
    const requestId = UUID.uuid4();
    const pending = new PromiseDelegate<IReplyMessage>();
    this._pending.set(requestId, pending);
    this._comm.send({ ...request, request_id: requestId });
    return pending.promise;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._close();
    const subshell = this._subshell;
    this._subshell = null;
    if (subshell && !subshell.kernel.isDisposed) {
      subshell.kernel
        .requestDeleteSubshell({ subshell_id: subshell.id }, true)
        .done.catch(error => console.debug('kailash-nb: deleting the subshell failed', error));
    }
    Signal.clearData(this);
  }

  /**
   * A kernel subshell (JEP 91) of this link's own, when the kernel has them: a probe
   * sent there is answered while the main shell runs cells ("Run All"), so the sidebar
   * follows the runs of the very cells that import kailash_nb. Null: the main shell.
   */
  private async _probeSubshell(kernel: Kernel.IKernelConnection): Promise<string | null> {
    // Known once the kernel's info reply is in (never awaited: a kernel replaced before
    // it answers never resolves it); until then the main shell serves, which is idle then.
    if (!kernel.supportsSubshells) {
      return null;
    }
    if (this._subshell?.kernel !== kernel) {
      const reply = await answerWithin(kernel.requestCreateSubshell({}, true), PROBE_TIMEOUT);
      const content = reply.content as { status: string; subshell_id?: string };
      if (content.status !== 'ok' || !content.subshell_id) {
        return null;
      }
      this._subshell = { kernel, id: content.subshell_id };
    }
    return this._subshell.id;
  }

  private _open(kernel: Kernel.IKernelConnection): void {
    const comm = kernel.createComm(COMM_TARGET);
    comm.onMsg = message => this._onMessage(message.content.data as unknown as KernelMessage);
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
        this._failPending('the kernel closed the kailash_nb link');
        this._setConnection(this._sessionContext.session?.kernel ? 'not-loaded' : 'no-kernel');
      }
    };
    this._comm = comm;
    this._setConnection('connected');
    // Opened on the probe's subshell when there is one: `comm.open()` would go to the
    // main shell, where it waits until every queued cell has run.
    const open = Messages.createMessage({
      msgType: 'comm_open',
      channel: 'shell',
      session: kernel.clientId,
      username: kernel.username,
      subshellId: this._subshell?.kernel === kernel ? this._subshell.id : null,
      content: { comm_id: comm.commId, target_name: COMM_TARGET, data: { request: 'snapshot' } }
    });
    kernel.sendShellMessage(open, false, true);
  }

  private _close(): void {
    const comm = this._comm;
    this._comm = null;
    this._failPending('the kernel link was closed');
    if (comm && !comm.isDisposed) {
      try {
        comm.close();
      } catch (error) {
        // The kernel is gone already; nothing is left to close.
        console.debug('kailash-nb: closing the comm failed', error);
      }
    }
  }

  private _onMessage(message: KernelMessage): void {
    if (message.type === 'reply') {
      const pending = message.request_id ? this._pending.get(message.request_id) : undefined;
      if (pending) {
        this._pending.delete(message.request_id as string);
        if (message.ok) {
          pending.resolve(message);
        } else {
          pending.reject(new KernelRequestError(message.error ?? 'the kernel refused the request'));
        }
      } else if (!message.ok) {
        console.warn('kailash-nb: the kernel refused a request:', message.error);
      }
      return;
    }
    this._dispatch(message);
  }

  private _onKernelChanged(): void {
    this._close();
    this._subshell = null;
    this._cells.clear();
    this._setConnection(this._sessionContext.session?.kernel ? 'not-loaded' : 'no-kernel');
    void this.probe();
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._close();
      this._subshell = null;
      this._cells.clear();
      this._setConnection(status === 'dead' ? 'no-kernel' : 'not-loaded');
    }
  }

  /**
   * Probes when a cell the user ran starts (on a subshell, answered beside the cells)
   * and when it ends. A cell is known by its execute_input: silent executes, ours
   * included, have none, so a probe never triggers another. The end is that cell's own
   * idle status, not the kernel's status, which a subshell's idle may have set already.
   */
  private _onIopub(_: ISessionContext, message: Messages.IMessage): void {
    const parent = (message.parent_header as Partial<Messages.IHeader>)?.msg_id;
    if (!parent) {
      return;
    }
    if (message.header.msg_type === 'execute_input') {
      this._cells.add(parent);
      if (this._subshell) {
        void this.probe();
      }
    } else if (
      message.header.msg_type === 'status' &&
      (message.content as { execution_state?: string }).execution_state === 'idle' &&
      this._cells.delete(parent)
    ) {
      void this.probe();
    }
  }

  private _setConnection(connection: Connection): void {
    if (this._model.connection !== connection) {
      this._dispatch({ type: 'connection', connection });
    }
  }

  private _dispatch(action: Parameters<typeof reduce>[1]): void {
    const next = reduce(this._model, action);
    if (next !== this._model) {
      this._model = next;
      this._changed.emit(next);
    }
  }

  private _failPending(reason: string): void {
    for (const pending of this._pending.values()) {
      pending.reject(new KernelRequestError(reason));
    }
    this._pending.clear();
  }

  private _sessionContext: ISessionContext;
  private _model: IViewModel;
  private _changed = new Signal<this, IViewModel>(this);
  private _comm: Kernel.IComm | null = null;
  private _subshell: { kernel: Kernel.IKernelConnection; id: string } | null = null;
  private _probing = false;
  private _probeAgain = false;
  private _retries = 0;
  /** The msg_ids of the user's cells that started and have not ended yet. */
  private _cells = new Set<string>();
  private _pending = new Map<string, PromiseDelegate<IReplyMessage>>();
  private _isDisposed = false;
}
