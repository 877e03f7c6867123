// Imported first by components.js: Shoelace's icons load from the corpus site itself.
import { setBasePath } from '@shoelace-style/shoelace/dist/utilities/base-path.js';

setBasePath(new URL('shoelace/', document.baseURI).href);
