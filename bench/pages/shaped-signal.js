// The two shaped-subscriber pages' signalling helpers (bench/shaped_subscriber.py).

// No trickle: the offer/answer carries every host candidate once gathering completes.
function gathered(pc) {
  return within(5000, new Promise(resolve => {
    const check = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', check); check();
  }), 'ICE gathering');
}

async function signal(path, body) {
  const response = await fetch(location.origin + path, {method: 'POST', body: JSON.stringify(body)});
  const json = await response.json();
  log.push({path, status: response.status});
  if (!response.ok) throw new Error(`${path} ${response.status} ${JSON.stringify(json)}`);
  return json;
}
