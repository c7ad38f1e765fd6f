// Served by fpmlb from static.root (integration/demo.sh).
document.addEventListener('DOMContentLoaded', () => {
  const js = document.getElementById('js');
  js.textContent = 'The script ran.';
  js.className = 'ran';
});
