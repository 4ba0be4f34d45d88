export function mountWall(root: HTMLElement, id: string) {
  root.textContent = "wall " + id;
}
