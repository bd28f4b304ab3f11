import './globals.css';

export const metadata = {
  title: 'ContextCleanse',
  description: 'ContextCleanse frontend',
};

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
