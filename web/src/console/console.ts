export function mountConsole(root: HTMLElement) {
  root.textContent = "console";
}
