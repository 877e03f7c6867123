// The styled-components page of the fidelity corpus (scripts/bench-fidelity.mjs): an
// orders dashboard whose "Order details" panel, opened by the one interaction, renders
// components never rendered before, so that styled-components inserts their rules then.
import React, { useState } from 'react';
import { createRoot } from 'react-dom/client';
import styled, { createGlobalStyle, css } from 'styled-components';

const Global = createGlobalStyle`
  body { margin: 0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; background: #f4f5fb; color: #1d2433; }
  * { box-sizing: border-box; }
`;
const Shell = styled.div`display: grid; grid-template-columns: 220px 1fr; min-height: 100vh;`;
const Nav = styled.nav`
  background: #1d2433; color: #c9cfe0; padding: 24px 16px;
  h2 { color: #fff; font-size: 18px; margin: 0 0 24px; letter-spacing: .02em; }
`;
const NavItem = styled.a`
  display: block; padding: 9px 12px; border-radius: 8px; color: inherit; text-decoration: none; margin-bottom: 4px;
  ${(p) => p.$active && css`background: #333d55; color: #fff; font-weight: 600;`}
`;
const Main = styled.main`padding: 28px 32px;`;
const Head = styled.header`display: flex; align-items: center; justify-content: space-between; margin-bottom: 24px; h1 { font-size: 26px; margin: 0; }`;
const Button = styled.button`
  border: 0; border-radius: 10px; padding: 10px 18px; font: inherit; font-weight: 600; cursor: pointer;
  background: ${(p) => (p.$primary ? '#5b4cff' : '#fff')}; color: ${(p) => (p.$primary ? '#fff' : '#1d2433')};
  box-shadow: 0 1px 2px rgba(16, 24, 40, .08), 0 0 0 1px ${(p) => (p.$primary ? '#5b4cff' : '#d8dce8')};
`;
const Stats = styled.div`display: grid; grid-template-columns: repeat(4, 1fr); gap: 16px; margin-bottom: 24px;`;
const Stat = styled.div`
  background: #fff; border-radius: 14px; padding: 16px 18px; box-shadow: 0 1px 3px rgba(16, 24, 40, .08);
  small { color: #6b7389; display: block; margin-bottom: 6px; } strong { font-size: 24px; }
`;
const Trend = styled.span`margin-left: 8px; font-size: 13px; font-weight: 600; color: ${(p) => (p.$up ? '#12a150' : '#d92d20')};`;
const Table = styled.table`width: 100%; border-collapse: collapse; background: #fff; border-radius: 14px; overflow: hidden; box-shadow: 0 1px 3px rgba(16, 24, 40, .08);`;
const Th = styled.th`text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #6b7389; padding: 12px 16px; background: #fafbfe;`;
const Td = styled.td`padding: 12px 16px; border-top: 1px solid #eef0f6;`;
const Status = styled.span`
  display: inline-block; padding: 3px 10px; border-radius: 99px; font-size: 12px; font-weight: 600;
  ${(p) => ({ paid: css`background: #e7f8ee; color: #12a150;`, pending: css`background: #fff4e5; color: #b54708;`, refunded: css`background: #fdecea; color: #d92d20;` }[p.$s])}
`;

// Rendered only once the panel opens: their rules do not exist before the interaction.
const Overlay = styled.div`position: fixed; inset: 0; background: rgba(17, 24, 39, .45); display: flex; justify-content: flex-end;`;
const Panel = styled.aside`
  width: 420px; height: 100%; background: #fff; padding: 28px; box-shadow: -8px 0 24px rgba(16, 24, 40, .18);
  h2 { margin: 0 0 4px; font-size: 22px; } p { color: #6b7389; margin: 0 0 20px; }
`;
const Timeline = styled.ol`list-style: none; margin: 0 0 24px; padding: 0 0 0 18px; border-left: 2px solid #e4e7f0;`;
const Step = styled.li`
  position: relative; padding: 0 0 16px 12px;
  &::before { content: ''; position: absolute; left: -25px; top: 4px; width: 12px; height: 12px; border-radius: 50%; background: ${(p) => (p.$done ? '#5b4cff' : '#d8dce8')}; }
  b { display: block; } span { color: #6b7389; font-size: 13px; }
`;
const Line = styled.div`display: flex; justify-content: space-between; padding: 10px 0; border-bottom: 1px dashed #e4e7f0; &:last-child { border: 0; font-weight: 700; font-size: 18px; }`;

const ORDERS = [
  ['#10482', 'Ada Lovelace', '€ 248.00', 'paid'], ['#10481', 'Grace Hopper', '€ 89.90', 'pending'],
  ['#10480', 'Alan Turing', '€ 1,204.50', 'paid'], ['#10479', 'Edsger Dijkstra', '€ 32.00', 'refunded'],
  ['#10478', 'Barbara Liskov', '€ 410.00', 'paid'], ['#10477', 'Donald Knuth', '€ 64.25', 'pending'],
];

function App() {
  const [open, setOpen] = useState(false);
  return (
    <Shell>
      <Global />
      <Nav><h2>Acme Shop</h2>{['Dashboard', 'Orders', 'Customers', 'Products', 'Settings'].map((n) => <NavItem key={n} href="#" $active={n === 'Orders'}>{n}</NavItem>)}</Nav>
      <Main>
        <Head><h1>Orders</h1><div><Button>Export</Button> <Button $primary id="details" onClick={() => setOpen(true)}>Order details</Button></div></Head>
        <Stats>
          <Stat><small>Revenue</small><strong>€ 48,210</strong><Trend $up>+12%</Trend></Stat>
          <Stat><small>Orders</small><strong>1,284</strong><Trend $up>+4%</Trend></Stat>
          <Stat><small>Refunds</small><strong>23</strong><Trend>+2</Trend></Stat>
          <Stat><small>Avg. basket</small><strong>€ 37.50</strong><Trend $up>+1%</Trend></Stat>
        </Stats>
        <Table>
          <thead><tr><Th>Order</Th><Th>Customer</Th><Th>Total</Th><Th>Status</Th></tr></thead>
          <tbody>{ORDERS.map(([id, who, total, s]) => <tr key={id}><Td>{id}</Td><Td>{who}</Td><Td>{total}</Td><Td><Status $s={s}>{s}</Status></Td></tr>)}</tbody>
        </Table>
      </Main>
      {open && (
        <Overlay>
          <Panel>
            <h2>Order #10482</h2><p>Placed by Ada Lovelace on 12 March</p>
            <Timeline>
              <Step $done><b>Paid</b><span>12 Mar, 09:14</span></Step>
              <Step $done><b>Packed</b><span>12 Mar, 15:40</span></Step>
              <Step><b>Shipped</b><span>expected 13 Mar</span></Step>
            </Timeline>
            <Line><span>Print, A3</span><span>€ 120.00</span></Line>
            <Line><span>Frame, oak</span><span>€ 128.00</span></Line>
            <Line><span>Total</span><span>€ 248.00</span></Line>
          </Panel>
        </Overlay>
      )}
    </Shell>
  );
}

createRoot(document.getElementById('root')).render(<App />);
