import { registerRef } from './ref.js';
import { registerImages } from './images.js';
import { registerInspect } from './inspect.js';
import { registerRmi } from './rmi.js';
import { registerLoad } from './load.js';
import { registerSave } from './save.js';
import { registerStore } from './store.js';
import { registerCreds } from './creds.js';
import { registerCreateSecret } from './create-secret.js';
import { registerManifest } from './manifest.js';
import { registerTags } from './tags.js';
import { registerBlob } from './blob.js';
import { registerPull } from './pull.js';
import { registerPod } from './pod.js';
import { registerEnsure } from './ensure.js';
import { registerExplain } from './explain.js';
import { registerBackoff } from './backoff.js';
import { registerServe } from './serve.js';
import { registerCri } from './cri.js';
import { registerGc } from './gc.js';
import { registerRecords } from './records.js';
import { registerPin } from './pin.js';
import { registerAdmission } from './admission.js';
import { registerNode } from './node.js';
import { registerGet } from './get.js';
import { registerDescribe } from './describe.js';
import { registerPrepull } from './prepull.js';
import { registerUnpack } from './unpack.js';

import type { RegisterCommand } from './register.js';

export type { RegisterCommand } from './register.js';

/** Every command of the CLI, in `--help` order. Add one line per command module. */
export const COMMANDS: RegisterCommand[] = [
  registerRef,
  registerPull,
  registerImages,
  registerInspect,
  registerRmi,
  registerLoad,
  registerSave,
  registerStore,
  registerCreds,
  registerCreateSecret,
  registerManifest,
  registerTags,
  registerBlob,
  registerPod,
  registerEnsure,
  registerExplain,
  registerBackoff,
  registerServe,
  registerCri,
  registerGc,
  registerRecords,
  registerPin,
  registerAdmission,
  registerNode,
  registerGet,
  registerDescribe,
  registerPrepull,
  registerUnpack,
];
