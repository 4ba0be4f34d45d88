export function mountTablet(root: HTMLElement) {
  root.textContent = "tablet";
}
