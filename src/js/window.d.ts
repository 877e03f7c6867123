// The script tag's global (README, "Script tag"): `Covisit(command, ...args)`, whose
// calls made before covisit.js ran wait in `Covisit.q`.
interface Window {
  Covisit?: ((...args: any[]) => unknown) & { q?: ArrayLike<any>[] };
}
