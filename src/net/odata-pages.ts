// OData paging as Defender's APIs do it: follow `@odata.nextLink`; a server that pages without
// links (the link's form is not documented) is asked for `$skip` until a short page.

export interface ODataPage<T> {
  rows: T[];
  nextLink: string | null;
}

export async function* odataPages<T>(firstUrl: string, pageSize: number, fetchPage: (url: string) => Promise<ODataPage<T>>, maxPages = 10_000): AsyncGenerator<T[]> {
  let url: string | null = firstUrl;
  let total = 0;
  let sawNextLink = false;
  for (let page = 0; url && page < maxPages; page++) {
    const { rows, nextLink } = await fetchPage(url);
    total += rows.length;
    yield rows;
    if (nextLink) {
      sawNextLink = true;
      url = nextLink;
    } else if (!sawNextLink && pageSize > 0 && rows.length >= pageSize) {
      url = `${firstUrl}${firstUrl.includes('?') ? '&' : '?'}$skip=${total}`;
    } else {
      url = null;
    }
  }
}
